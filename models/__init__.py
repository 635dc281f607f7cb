"""Everything banter computes: encoder, intent head, responder, generator, persona
replies, routing policy and latency tracking. Pure Python; never imports faust,
aiokafka or anything else of banter's."""

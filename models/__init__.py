"""Everything banter computes: encoder, intent head, responder, generator, persona
replies, routing policy and latency tracking. Pure Python; never imports faust,
aiokafka or anything else of banter's. What a worker runs lives here; what builds,
trains, converts and evaluates the models lives in ``models.build``, which this
side never imports."""

"""banter's faust agents, one module each; the app discovers them, nothing imports them."""

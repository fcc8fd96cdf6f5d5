-- clock: the server's TIME (seconds, microseconds), routed like every other
-- script so a cluster answers from the node that owns the namespace.
return redis.call('TIME')

"""Human approval of a candidate, bound to its digest: request store, policy, audit log, waiting, webhook."""

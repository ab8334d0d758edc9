"""Consumers and authentication: who is calling, decided by filters on the public filter API.

- `consumer.py`: `Consumer`, what an authenticated request carries as `req.consumer`.
- `config.py`: `consumers:` entries and the `auth` filter's config (and its one-method kinds).
- `secrets.py`: credentials as SHA-256 digests, compared in constant time; `env:` references.
- `directory.py`: the consumers in force (config file plus etcd), indexed by credential.
- `jwks.py`, `tokens.py`, `jwt.py`: JWT verification with keys from PEM/JWK/JWKS, a bounded
  cache of verified tokens; `keyauth.py`, `basic.py`, `forward.py`: the other methods.
- `filter.py`: the `auth` filter (ORDER_AUTH): methods in order, first success wins.
- `kinds.py`: registers the filter kinds; `etcd.py`: consumers under /edgeward/consumers/.

This package's `__init__` imports nothing, so `edgeward.http.message` can import
`edgeward.auth.consumer` (a leaf) without pulling the rest in.
"""

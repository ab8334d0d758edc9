"""ACME (RFC 8555) certificates: account, orders, HTTP-01 and TLS-ALPN-01 (RFC 8737),
renewal scheduling, on-disk storage and an order lock shared by gateways.

    responder = ChallengeResponder()              # the listener asks it for challenge answers
    manager = AcmeManager.create(cfg.acme, responder=responder, store=store, lock=lock)
    ... loop: wake_at = await manager.step(time.time())

The HTTP client is control plane (stdlib http.client in a thread), never the request path.
"""

"""TLS: config, certificate validation, contexts, SNI selection, reload, tickets, ACME.

Independent of the listener: the listener wraps its sockets with `CertificateStore.front`
(a context whose `sni_callback` picks the certificate), drives `CertificateStore.poll(now)`
on a timer, and calls the ACME responder for `/.well-known/acme-challenge/`.
"""

"""gRPC at the gateway: status codes and deadlines (`status`), gateway-made errors as gRPC
trailers-only responses, gRPC-Web translation for browsers (`web`), and the gRPC health
check probe (`health`). Calls are proxied as HTTP/2 streams by the upstream h2 codec."""

"""HTTP/1.1: the listener's client connections, the upstream connections and their pools."""

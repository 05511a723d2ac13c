"""The incidents engine in the daemon: incidents from bus signals, automatic responses,
notifications with a durable outbox, circuit breakers on the proxy."""

"""Actor <-> learner transport over ZeroMQ: wire protocol, sockets, disk spool, CURVE keys."""

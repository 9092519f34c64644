"""The tf.data service: servers that read, decode and resize training images (data.service)."""

from __future__ import annotations

import socket

import tensorflow as tf

from .errors import ConfigError, DataError, first_line

service = tf.data.experimental.service


def serve(port: int, dispatcher: str | None, address: str | None) -> None:
    """Run a dispatcher on `port` (no `dispatcher` given), or a worker that registers
    with `dispatcher` ("host:port") and tells clients to reach it at `address`; until
    interrupted."""
    _check_free(port)
    host = address or socket.getfqdn()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    if dispatcher is None:
        server = service.DispatchServer(service.DispatcherConfig(port=port))
        print(f"dispatcher: train with data.service = 'grpc://{host}:{port}'")
        print(
            f"workers: data-service --port PORT --dispatcher {host}:{port}", flush=True
        )
    else:
        _check_reachable(dispatcher, "--dispatcher")
        server = service.WorkerServer(
            service.WorkerConfig(
                dispatcher_address=dispatcher.removeprefix("grpc://"),
                worker_address=f"{host}:%port%",
                port=port,
            )
        )
        print(f"worker for {dispatcher} on port {port}", flush=True)
    server.join()


def distribute(examples: tf.data.Dataset, dispatcher: str) -> tf.data.Dataset:
    """`examples` produced by the service's workers: each worker takes the next part
    of the split when it is free (dynamic sharding), so every example arrives once
    per pass, in no fixed order."""
    _check_reachable(dispatcher, "data.service =")
    print(f"data service: {dispatcher} (training waits while it has no workers)")
    count = int(examples.cardinality())
    try:
        served = examples.apply(
            service.distribute(
                processing_mode=service.ShardingPolicy.DYNAMIC, service=dispatcher
            )
        )
    except tf.errors.OpError as error:  # e.g. a worker's port instead
        raise DataError(
            f"data.service = {dispatcher!r} is not a tf.data service dispatcher "
            f"({first_line(error)})"
        ) from None
    return served.apply(tf.data.experimental.assert_cardinality(count))


def _check_free(port: int) -> None:
    """Refuse a port in use: gRPC would share it with the other server (SO_REUSEPORT)."""
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError as error:
            raise ConfigError(
                f"port {port} is not free ({error.strerror}); choose another --port"
            ) from None


def _check_reachable(dispatcher: str, name: str) -> None:
    """Refuse a dispatcher that does not answer (TensorFlow would wait for it forever)."""
    host, _, port = dispatcher.removeprefix("grpc://").rpartition(":")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        host = ""  # an IPv6 address needs brackets: [::1]:5050
    host = host.strip("[]")
    if not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(
            f"{name} {dispatcher!r} is not an address like grpc://host:5050"
        )
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise DataError(
            f"no tf.data service dispatcher answers at {dispatcher!r} ({reason}); "
            "start one with the data-service command"
        ) from None

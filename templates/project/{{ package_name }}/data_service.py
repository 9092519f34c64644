"""The tf.data service: a dispatcher and its workers, which run the training input
pipeline (reading, decoding, resizing) for runs with data.service set."""

from __future__ import annotations

import socket

import tensorflow as tf

from .errors import DataError

service = tf.data.experimental.service


def serve(port: int, dispatcher: str | None, address: str | None) -> None:
    """Run a dispatcher on `port` (no `dispatcher` given), or a worker that registers
    with `dispatcher` ("host:port") and tells clients to reach it at `address`; until
    interrupted."""
    if dispatcher is None:
        server = service.DispatchServer(service.DispatcherConfig(port=port))
        host = address or socket.getfqdn()
        print(f"dispatcher: train with data.service = 'grpc://{host}:{port}'")
        print(f"workers: data-service --dispatcher {host}:{port}")
    else:
        server = service.WorkerServer(
            service.WorkerConfig(
                dispatcher_address=dispatcher,
                worker_address=f"{address or socket.getfqdn()}:%port%",
                port=port,
            )
        )
        print(f"worker for {dispatcher} on port {port}")
    server.join()


def distribute(examples: tf.data.Dataset, dispatcher: str) -> tf.data.Dataset:
    """`examples` produced by the service's workers: each worker takes the next part
    of the split when it is free (dynamic sharding), so every example arrives once
    per pass, in no fixed order."""
    _check_reachable(dispatcher)
    count = int(examples.cardinality())
    return examples.apply(
        service.distribute(
            processing_mode=service.ShardingPolicy.DYNAMIC, service=dispatcher
        )
    ).apply(tf.data.experimental.assert_cardinality(count))


def _check_reachable(dispatcher: str) -> None:
    """Refuse a dispatcher that does not answer (TensorFlow would wait for it forever)."""
    host, _, port = dispatcher.removeprefix("grpc://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except ValueError:
        raise DataError(
            f"data.service = {dispatcher!r} is not an address like grpc://host:5050"
        ) from None
    except OSError as error:
        raise DataError(
            f"no tf.data service dispatcher answers at {dispatcher!r}: "
            f"{error.strerror or error}; start one with the data-service command"
        ) from None

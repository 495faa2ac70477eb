"""``teleinfo publish``: the edge daemon. Dongles (or recordings) -> readings -> Kafka.

    teleinfo publish /dev/serial/by-id/usb-...TINFO-1234-if00-port0 --bootstrap broker:9092
    teleinfo publish /dev/ttyUSB0#pdl=12345678901234 socket://pi2:2001#name=garage \\
        --metrics-port 9108
    teleinfo publish --replay capture.bin --pace real

Runs until SIGTERM/SIGINT; on the way out it delivers what it can within a few seconds and
spools the rest. Every option has a LINKY_* variable (docs/configuration.md); docs/edge.md
explains the spool, metrics and troubleshooting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from stream.settings import Settings
from teleinfo.edge import parse_devices, replay_files, run_edge
from teleinfo.logs import configure_logging
from teleinfo.metrics import EdgeMetrics
from stream.kafka_security import client_kwargs
from stream.kafka_security import describe as describe_security
from teleinfo.publisher import AiokafkaSink, GatewaySigner, Publisher
from teleinfo.spool import Spool

__all__ = ["register", "run"]

log = logging.getLogger("teleinfo.publish")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "publish", help="edge daemon: read dongles, publish readings to Kafka",
        description="Read TIC dongles (paths or pyserial URLs), decode, publish normalized "
                    "readings to Kafka keyed by PDL; spool to disk while Kafka is away. "
                    "DEVICE may end with #pdl=PRM,name=NAME,baud=1200|9600.")
    p.add_argument("devices", nargs="*", metavar="DEVICE",
                   help="device path or pyserial URL (default: LINKY_EDGE_DEVICES)")
    p.add_argument("--replay", nargs="+", type=Path, metavar="FILE",
                   help="publish recordings (teleinfo record) instead of reading devices")
    p.add_argument("--pace", choices=("fast", "real"), default="fast",
                   help="replay speed: as fast as possible, or the line's real pace")
    p.add_argument("--pdl", help="with --replay: PDL to publish under (historic recordings)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (LINKY_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="readings topic (LINKY_READINGS_TOPIC)")
    p.add_argument("--partitions", type=int,
                   help="partitions if the topic must be created (LINKY_TOPIC_PARTITIONS)")
    p.add_argument("--replication", type=int,
                   help="replication if the topic must be created (LINKY_TOPIC_REPLICATION)")
    p.add_argument("--spool-dir", type=Path, help="disk spool directory (LINKY_SPOOL_DIR)")
    p.add_argument("--spool-max-bytes", type=int, help="spool size limit (LINKY_SPOOL_MAX_BYTES)")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus /metrics on this port (LINKY_EDGE_METRICS_PORT)")
    p.add_argument("--metrics-host", help="bind address for /metrics (LINKY_EDGE_METRICS_HOST)")
    p.add_argument("--log-format", choices=("json", "text"), help="LINKY_LOG_FORMAT")
    p.add_argument("--log-level", help="LINKY_LOG_LEVEL")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        kafka_bootstrap=args.bootstrap, readings_topic=args.topic,
        topic_partitions=args.partitions, topic_replication=args.replication,
        spool_dir=args.spool_dir, spool_max_bytes=args.spool_max_bytes,
        edge_metrics_port=args.metrics_port, edge_metrics_host=args.metrics_host,
        log_format=args.log_format, log_level=args.log_level)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        specs = args.devices or settings.edge_devices.split()
        devices = parse_devices(specs)
        client_kwargs(settings)  # TLS/SASL settings complete and readable (docs/security.md)
        if settings.edge_gateway_key_file:
            GatewaySigner(settings.edge_gateway_key_file)  # the key file parses
    except (ValueError, OSError) as exc:
        print(f"teleinfo publish: {exc}", file=sys.stderr)
        return 2
    if not devices and not args.replay:
        print("teleinfo publish: give at least one DEVICE (or LINKY_EDGE_DEVICES), or --replay",
              file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(_main(args, settings, devices))


def build_publisher(settings: Settings, metrics: EdgeMetrics) -> Publisher:
    """The publisher the daemon uses (spool + idempotent aiokafka producer)."""
    spool = Spool(settings.spool_dir, settings.spool_max_bytes,
                  fsync_seconds=settings.spool_fsync_seconds,
                  on_drop=lambda n, reason: metrics.dropped.labels(reason).inc(n))
    sink = AiokafkaSink(settings.kafka_bootstrap, settings.readings_topic,
                        partitions=settings.topic_partitions,
                        replication=settings.topic_replication,
                        compression=settings.edge_compression, linger_ms=settings.edge_linger_ms,
                        security=client_kwargs(settings),
                        signer=GatewaySigner(settings.edge_gateway_key_file) if settings.edge_gateway_key_file else None)
    return Publisher(sink, spool, metrics, spool_after_seconds=settings.spool_after_seconds,
                     drain_batch=settings.spool_drain_batch)


async def _main(args: argparse.Namespace, settings: Settings, devices: list) -> int:  # type: ignore[type-arg]
    metrics = EdgeMetrics()
    if settings.edge_metrics_port:
        metrics.serve(settings.edge_metrics_port, settings.edge_metrics_host)
    publisher = build_publisher(settings, metrics)
    sender = asyncio.create_task(publisher.run(), name="publisher")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("teleinfo publish started", extra={
        "event": "started", "devices": [d.url for d in devices], "topic": settings.readings_topic,
        "bootstrap": settings.kafka_bootstrap, "spool_dir": str(settings.spool_dir),
        "kafka_security": describe_security(settings),
        "gateway_key_file": settings.edge_gateway_key_file or None,
        "spool_waiting": publisher.spool.depth})
    try:
        if args.replay:
            await replay_files(args.replay, publisher.submit, metrics, pace=args.pace,
                               pdl=args.pdl)
            # a replay ends when everything is acknowledged (or on a signal)
            while publisher.pending and not stop.is_set():
                await asyncio.sleep(0.1)
        else:
            await run_edge(devices, publisher.submit, metrics, stop)
    finally:
        await publisher.close(timeout=5.0)
        sender.cancel()
    left = publisher.spool.depth
    log.info("teleinfo publish stopped", extra={"event": "stopped", "spooled": left})
    return 0

"""`autolabel serve labelstudio`: the labeling engine as a Label Studio ML backend (and a JSON API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolabel.cli.common import Device, Precision, guard
from autolabel.cli.label import DetectorModel, OntologyArg, SegmenterModel

serve_app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Serve the labeling engine over HTTP."
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@serve_app.command("labelstudio")
def serve_labelstudio(
    ontology: OntologyArg,
    run: Annotated[
        Path | None,
        typer.Option(help="A run of this ontology: its images are answered from its store, new ones are stored in it."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (another than loopback needs --allow-remote).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one, printed).")] = 9090,
    token: Annotated[
        str | None,
        typer.Option(envvar="AUTOLABEL_SERVE_TOKEN", help="Checked on every request (Bearer, or Basic auth password)."),
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Listen on a non-loopback address (a --token is then required).")
    ] = False,
    document_root: Annotated[
        Path | None,
        typer.Option(
            help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, for /data/local-files/ images [default: that "
            "environment variable].",
        ),
    ] = None,
    labelstudio_url: Annotated[
        str | None, typer.Option(help="Label Studio's address, for /data/upload/ images [default: sent on setup].")
    ] = None,
    labelstudio_token: Annotated[
        str | None,
        typer.Option(
            envvar="LABEL_STUDIO_API_KEY", help="Label Studio token for /data/upload/ [default: sent on setup]."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per forward pass, at most.")] = 8,
    max_body_mb: Annotated[float, typer.Option(min=0.01, help="Largest request body accepted (413 above).")] = 50.0,
    device: Annotated[Device, typer.Option(help="auto picks cuda, then mps, then cpu.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help="fp16/bf16 only on CUDA.")] = Precision.auto,
    detector_model: DetectorModel = None,
    segmenter_model: SegmenterModel = None,
) -> None:
    """Serve the ontology's models to Label Studio: predictions for its tasks (from --run's store when the image
    is there), a mask for a box a person draws, and `POST /v1/label` for other tools. Stops on Ctrl-C / SIGTERM
    after the requests in flight."""

    def serve() -> None:
        import logging
        import signal
        import threading

        from autolabel.api import Labeler
        from autolabel.cli.label import ontology_with
        from autolabel.errors import UsageError
        from autolabel.serve.backend import Backend
        from autolabel.serve.engine import Engine
        from autolabel.serve.http import Server
        from autolabel.serve.sources import Sources
        from autolabel.serve.sources import document_root as root_of

        if host not in LOOPBACK and not allow_remote:
            raise UsageError(
                f"--host {host} is not loopback", hint="add --allow-remote (and a --token) to serve others"
            )
        if host not in LOOPBACK and not token:
            raise UsageError(f"--host {host} needs a token", hint="--token T, or AUTOLABEL_SERVE_TOKEN")
        models: dict[str, tuple[str | None, str | None]] = {
            "detector": (None, detector_model),
            "segmenter": (None, segmenter_model),
        }
        ont = ontology_with(ontology, models, None, None)
        labeler = Labeler(ont, device=device.value, precision=precision.value, batch_size=batch_size)
        engine = Engine(labeler, run, batch_size)
        sources = Sources(root_of(document_root), labelstudio_url, labelstudio_token, int(max_body_mb * 2**20))
        try:
            server = Server((host, port), Backend(engine, sources), token, int(max_body_mb * 2**20))
        except OSError as e:
            engine.close()
            raise UsageError(
                f"cannot listen on {host}:{port}: {e.strerror or e}", hint="another --port (0 picks a free one)"
            ) from None
        logging.basicConfig(level=logging.WARNING, format="%(message)s")

        def stop(*_: object) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        url = f"http://{host}:{server.server_address[1]}"
        typer.echo(f"serving {', '.join(engine.classes)} ({engine.model_version}) on {url}", err=False)
        typer.echo(
            f"Label Studio: Settings → Model → Connect model → {url}"
            + (" (Basic auth: any user, the token)" if token else "")
        )
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()  # waits for the requests in flight
            engine.close()
        s = engine.stats.to_json()
        typer.echo(
            f"stopped: {s['requests']} requests, {s['images']} images in {s['forward_passes']} forward passes, "
            f"{s['from_run']} from the run, {s['stored']} stored in it, {s['errors']} refused or failed"
        )

    guard(serve)

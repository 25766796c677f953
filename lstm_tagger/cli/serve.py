"""``lstm-tag serve``: the tagging server (the ``serve`` extra is imported only when the command runs).
"""

from __future__ import annotations

from typing import List, Optional

import typer

from lstm_tagger.limits import MAX_REQUEST_BYTES
from lstm_tagger.cli.common import DEVICE_HELP, PREDICT_THREADS_HELP, user_errors, app, run



@app.command(
    "serve",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag serve --model runs/demo   (then open http://127.0.0.1:8080/)\n\n"
        "  lstm-tag serve --model en=runs/ewt --model vi=runs/vtb --port 8001\n\n"
        "  curl -F data=\"Don't stop.\" -F tokenizer= -F tagger= http://127.0.0.1:8080/process   (UDPipe's API)\n\n"
        "  curl -H 'Content-Type: application/json' -d '{\"text\": \"The dog barks.\", \"format\": \"conllu\"}' http://127.0.0.1:8080/tag"
    ),
)
def serve_cli(
    model: Optional[List[str]] = typer.Option(
        None, "--model", "-m", metavar="[NAME=]PATH",
        help="A run directory or checkpoint to serve, as NAME (default: the run's name); repeatable, the first is the default "
        "\\[default: best model of the newest run in runs/].",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on: 0.0.0.0 lets other machines in (no authentication: your choice)."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="TCP port (0: any free port, shown in the log)."),
    threads: str = typer.Option("auto", "--threads", metavar="auto|N", help=PREDICT_THREADS_HELP),
    max_body: int = typer.Option(MAX_REQUEST_BYTES, "--max-body", metavar="BYTES", min=1, help="Largest request body; larger gets 413."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Serve models over HTTP: a JSON API, UDPipe's REST API and a web page, until Ctrl-C or SIGTERM."""
    with user_errors():
        from lstm_tagger.serve.server import serve  # FastAPI and uvicorn: the serve extra, imported when used

        serve(model or [], host=host, port=port, threads=threads, max_body=max_body, device=device)


if __name__ == "__main__":  # pragma: no cover
    run()

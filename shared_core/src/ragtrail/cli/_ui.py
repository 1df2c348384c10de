"""``ragtrail ui``: serve the local web view (needs ``pip install 'ragtrail[ui]'``)."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ._common import db_option, emit_json, json_option

#: Addresses that only this machine can reach: no token needed there.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@click.command()
@db_option
@json_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Any other than loopback needs --token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--open", "open_browser", is_flag=True, help="Open the view in a browser.")
@click.option("--token", envvar="RAGTRAIL_UI_TOKEN", default=None,
              help="Required on every request (default: $RAGTRAIL_UI_TOKEN); needed to bind "
                   "a non-loopback address.")
@click.option("--token-name", envvar="RAGTRAIL_UI_TOKEN_NAME", default=None,
              help="Who holds the token: the name the audit of reads records (default "
                   "'token', or 'local' without one).")
@click.option("--no-audit", is_flag=True, help="Do not record reads in the read audit.")
def ui(db: str | None, as_json: bool, host: str, port: int, open_browser: bool,
       token: str | None, token_name: str | None, no_audit: bool) -> None:
    """Serve a read-only web view of the database until Ctrl-C (with --json, the
    address it serves at is printed as one JSON object)."""
    if host not in LOOPBACK and not token:
        raise ConfigError(f"binding {host} makes the view reachable from other machines: "
                          "give --token TOKEN (or set RAGTRAIL_UI_TOKEN)")
    if token is not None and len(token) < 8:
        raise ConfigError("--token must be at least 8 characters")
    try:
        import uvicorn

        from ..web import create_app
    except ImportError as exc:
        raise ConfigError(f"ragtrail ui needs its extra: pip install 'ragtrail[ui]' "
                          f"({exc.name} is missing)") from None
    hosts = None if token else frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
    app = create_app(db, token=token, allowed_hosts=hosts, token_name=token_name,
                     audit=not no_audit)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if as_json:  # one line a supervisor can read: where the view is served
        emit_json({"url": url, "database": app.state.source.url, "token_required": bool(token)})
    else:
        click.echo(f"ragtrail ui: serving {app.state.source.url} read-only at {url}"
                   + (" (token required)" if token else "") + "  (Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")

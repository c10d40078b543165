# The manual's example of embedding the router (a WSGI app dispatching to
# sub-apps by prefix) runs as written.

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "docs" / "library.md"


def readme_example(name: str) -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (code,) = [block for block in blocks if f"def {name}(" in block]
    scope: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - our own README's example
    return scope


def call(app: Any, path: str) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(app({"PATH_INFO": path, "SCRIPT_NAME": ""}, lambda status, headers: seen.append(status)))
    return seen[0], body


def test_the_wsgi_dispatch_example_mounts_sub_apps_by_prefix() -> None:
    def echo(name: str) -> Any:
        def sub_app(environ: dict[str, str], start_response: Any) -> list[bytes]:
            start_response("200 OK", [])
            return [f"{name} {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]
        return sub_app

    app = readme_example("mounted")["mounted"]({"/api": echo("api"), "/": echo("site")})
    assert call(app, "/api/users/7") == ("200 OK", b"api /api /users/7")
    assert call(app, "/apis") == ("200 OK", b"site  /apis")
    alone = readme_example("mounted")["mounted"]({"/api": echo("api")})
    assert call(alone, "/other")[0] == "404 Not Found"

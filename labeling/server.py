"""A local Label Studio for development and tests: its own virtualenv, SQLite, token auth, no network.

  make label-studio            # or: .venv/bin/python -m labeling.server --port 8080

Label Studio's Django pins clash with ours, so it lives in .ls-venv (created by `make test` /
`make label-studio`). The token below is a development token for a server bound to 127.0.0.1.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from manga_intent.home import REPO_ROOT, manga_home

LS_VENV = Path(os.environ.get("MANGA_LS_VENV", REPO_ROOT / ".ls-venv"))
DEV_USER = "labeler@mangaassist.local"
DEV_PASSWORD = "manga-labeler-dev"
DEV_TOKEN = "4d616e676141737369737444657654306b656e31"  # 40 hex chars, dev only


class LabelStudioServer:
    def __init__(
        self,
        port: int = 8080,
        data_dir: Path | None = None,
        token: str = DEV_TOKEN,
        username: str = DEV_USER,
        password: str = DEV_PASSWORD,
        log_path: Path | None = None,
    ):
        self.port, self.token, self.username, self.password = port, token, username, password
        self.data_dir = Path(data_dir or manga_home() / "label-studio")
        self.log_path = Path(log_path or self.data_dir / "server.log")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def executable(self) -> Path:
        binary = LS_VENV / "bin" / "label-studio"
        if not binary.exists():
            raise FileNotFoundError(
                f"{binary} not found: create Label Studio's virtualenv with `make label-studio-venv`"
            )
        return binary

    def start(self, wait_seconds: float = 180) -> "LabelStudioServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_USERNAME": self.username,
            "LABEL_STUDIO_PASSWORD": self.password,
            "LABEL_STUDIO_USER_TOKEN": self.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        }
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                str(self.executable()),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_healthy(wait_seconds)
        return self

    def wait_healthy(self, wait_seconds: float) -> None:
        deadline = time.time() + wait_seconds
        while time.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(
            f"Label Studio did not answer on {self.url} within {wait_seconds}s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local Label Studio for MangaAssist labelers.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    server = LabelStudioServer(args.port, Path(args.data_dir) if args.data_dir else None)
    server.start()
    print(
        f"Label Studio: {server.url}  (login {server.username} / {server.password})\n"
        f"API for the platform: LABEL_STUDIO_URL={server.url} LABEL_STUDIO_API_KEY={server.token}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

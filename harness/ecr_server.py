"""moto's server (PyPI `moto[server]`, what `moto_server -p PORT` runs) with one change: a token
generation for GetAuthorizationToken, so that a test can rotate the ECR token.

moto answers GetAuthorizationToken with the password `<registry id>-auth-token` (moto/ecr/responses.py,
`ECRResponse.get_authorization_token`): constant per registry id, and the helper asks for the
registry id of the host it is given, so neither new AWS keys nor a restart change it. Here moto's own
answer is taken and, once the file named by `--generation-file` holds a number N, `-N` is appended to
each password (`<registry id>-auth-token-N`). Without that file the answer is moto's, byte for byte.

    python harness/ecr_server.py --generation-file FILE -p PORT
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from moto.ecr.responses import ECRResponse
from moto.server import main as moto_server


def _with_generation(generation_file: Path) -> None:
    original = ECRResponse.get_authorization_token

    def get_authorization_token(self: ECRResponse) -> Any:
        answer = original(self)
        try:
            generation = int(generation_file.read_text())
        except FileNotFoundError:
            return answer
        result: dict[str, list[dict[str, Any]]] = answer.result  # type: ignore[assignment]
        for data in result["authorizationData"]:
            username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            data["authorizationToken"] = base64.b64encode(f"{username}:{password}-{generation}".encode()).decode()
        return answer

    ECRResponse.get_authorization_token = get_authorization_token  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generation-file", type=Path, required=True)
    args, moto_args = parser.parse_known_args(argv)
    _with_generation(args.generation_file)
    moto_server(moto_args)


if __name__ == "__main__":
    main(sys.argv[1:])

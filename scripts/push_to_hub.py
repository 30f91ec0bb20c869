"""Upload a saved hf_charlm model folder to the Hugging Face Hub (a thin CLI over `hf_charlm.hub.push_folder`).

    python scripts/push_to_hub.py outputs/pretrain-tiny your-username/charlm-tiny --dry_run

With `--space user/charlm-tiny-demo` the model is followed by a Gradio Space that shows it with the demo page
(app.py, the hf_charlm source, a Space card whose `models:` lists the model and any `--space_model`). Drop
`--dry_run` to upload. The token comes from --token, else HF_TOKEN, else `hf auth login`; HF_ENDPOINT picks
another Hub. Trainer state (`checkpoint-*/`, `runs/`, `training_args.bin`) is left out; pickle weights, credentials
and symlinks leaving the folder stop the upload with an error naming them; `config.json`'s `auto_map` and the
remote-code files are completed on the Hub without touching the folder. Exit status: 0 done, 1 refused or failed,
2 bad arguments (e.g. OUTPUT_DIR is not a directory) or no usable token (the message says how to log in).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from hf_charlm.hub import HubAuthenticationError, plan_space, plan_upload, push_folder, push_space


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder written by save_pretrained / Trainer")
    parser.add_argument("repo_id", metavar="user/repo", help="Hub repo to create or update")
    parser.add_argument("--private", action="store_true", help="create the repo private (an existing repo is kept)")
    parser.add_argument("--revision", help="branch to commit to, created from main if missing (default: main)")
    parser.add_argument("--commit_message", help="commit title (default: 'Upload <folder> with hf_charlm')")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--dry_run", action="store_true", help="list what would be uploaded, upload nothing")
    parser.add_argument("--space", metavar="user/space", help="also publish the demo page as this Gradio Space")
    parser.add_argument("--space_model", action="append", default=[], metavar="user/repo",
                        help="another Hub model for the Space to show (repeatable)")
    args = parser.parse_args(argv)
    if not Path(args.output_dir).is_dir():
        parser.error(f"OUTPUT_DIR {args.output_dir!r} is not a directory (expected a saved model folder)")
    if args.space and "/" not in args.repo_id:
        parser.error(f"--space needs the model's full id (user/{args.repo_id}): the Space card lists it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.dry_run:
            plan = plan_upload(args.output_dir)
            print(f"Dry run: would upload {len(plan.files)} files to {args.repo_id}"
                  f"{'@' + args.revision if args.revision else ''}:")
            for path in plan.files:
                print(f"  {path}{'  (fixed/added on upload)' if path in plan.fixed else ''}")
            for path in plan.excluded:
                print(f"  [excluded] {path}")
            if args.space:
                files = plan_space([args.repo_id, *args.space_model])
                print(f"and {len(files)} files to the Space {args.space} (README.md, app.py, requirements.txt, hf_charlm/)")
            return 0
        result = push_folder(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                             commit_message=args.commit_message, token=args.token)
        space = push_space(args.space, [args.repo_id, *args.space_model], private=args.private,
                           token=args.token) if args.space else None
    except HubAuthenticationError as e:  # a usage problem, like a bad argument
        print(f"push_to_hub: {e}", file=sys.stderr)
        return 2
    except HfHubHTTPError as e:  # e.g. 403: no write access to that namespace
        status = e.response.status_code if e.response is not None else "no response"
        print(f"push_to_hub: the Hub refused the upload ({status}): {e.server_message or str(e).splitlines()[0]}",
              file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"push_to_hub: {e}", file=sys.stderr)
        return 1
    print(f"Uploaded {len(result)} files: {result.commit_info.commit_url}")
    print(f"Pin this revision: revision=\"{result.commit_info.oid}\"")
    if space is not None:
        print(f"Space: {len(space)} files: {space.commit_info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

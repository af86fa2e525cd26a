"""`fetalplanes data ...`: check a dataset, make the phantom dataset and video, a slideshow video of still images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli import add_command
from edge.cli_args import add_data, add_out
from edge.errors import EXIT_FAILURE, EXIT_OK, FetalPlanesError


def _check(args: argparse.Namespace) -> int:
    from fetaldata.check import check_dataset, format_report
    from fetaldata.fetal_planes_db import FetalPlanesDB

    db = FetalPlanesDB.open(args.dir)
    rep = check_dataset(db, images=not args.no_images, decode=not args.no_decode)
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_dict(), indent=2))
    print(format_report(rep))
    return EXIT_OK if rep.ok else EXIT_FAILURE


def _phantom(args: argparse.Namespace) -> int:
    from fetaldata.phantom.dataset import write_phantom_dataset

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FetalPlanesError(
            f"{out}: folder exists and is not empty", hint="choose another --out, or pass --force to overwrite it"
        )
    if args.patients < 4:
        raise FetalPlanesError(f"--patients {args.patients} is too few", hint="use at least 4 (train/val/test need patients)")

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  {done}/{total} images", end="" if done < total else "\n", file=sys.stderr)

    write_phantom_dataset(out, patients=args.patients, seed=args.seed, size=args.size, progress=progress)
    print(f"phantom dataset written to {out} (synthetic: it exercises the software, it proves nothing clinical)")
    return EXIT_OK


def _check_video_out(out: str) -> None:
    """Before any work: the video's folder takes a file (its truth CSV goes beside it); exit 2 naming it if not."""
    from edge.live.outputs import check_file_writable

    check_file_writable(out, f"--out {out}")


def _phantom_video(args: argparse.Namespace) -> int:
    from fetaldata.phantom.video import write_phantom_video

    _check_video_out(args.out)
    path = write_phantom_video(
        args.out, seconds=args.seconds, fps=args.fps, width=args.width, height=args.height, seed=args.seed,
        scan_width=args.scan_width,
    )
    print(f"phantom scanner video written to {path} (ground truth beside it: {Path(path).with_suffix('.truth.csv')})")
    return EXIT_OK


def _slideshow(args: argparse.Namespace) -> int:
    from fetaldata.slideshow import SlideshowConfig, folder_slides, real_exams, write_slideshow

    if bool(args.folder) == bool(args.real):
        raise FetalPlanesError("give either --folder DIR (one or more) or --real SHARED_DATA",
                               hint="e.g. fetalplanes data slideshow --out show.avi --folder ../shared/data/hc18_sample")
    _check_video_out(args.out)
    exams = real_exams(args.real, seed=args.seed) if args.real else [folder_slides(f) for f in args.folder]
    config = SlideshowConfig(fps=args.fps, width=args.width, height=args.height, seed=args.seed)
    show = write_slideshow(args.out, exams, config)
    print(f"slideshow video written to {show.path}: {show.frames} frames, {len(show.segments)} images in {len(show.exams)} "
          f"exams (ground truth beside it: {show.truth}); the images are real, the motion and timing synthetic")
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    from edge.live.outputs import check_file_writable
    from fetaldata.classify_scoring import score_classify_csv

    if args.json:
        check_file_writable(args.json, f"--json {args.json}")
    report = score_classify_csv(args.csv, args.data)
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"top-1 accuracy on {report['images']} images: {report['accuracy_text']}", file=sys.stderr)
    return EXIT_OK


def register(subparsers) -> None:
    data = add_command(
        subparsers,
        "data",
        "check a FETAL_PLANES_DB folder, or make the synthetic phantom dataset/video",
        None,
        "fetalplanes data check ~/FETAL_PLANES_DB",
    )
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda a: (data.print_help(), 2)[1])

    p = add_command(
        sub,
        "check",
        "count classes, splits, patients, operators, machines; list missing/unreadable images (exit 1 if broken)",
        _check,
        "fetalplanes data check ~/FETAL_PLANES_DB --json check.json",
    )
    p.add_argument("dir", help="FETAL_PLANES_DB folder (FETAL_PLANES_DB_data.csv + Images/)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--no-images", action="store_true", help="check the CSV only, not the image files")
    p.add_argument("--no-decode", action="store_true", help="only check that image files exist, do not decode them")

    p = add_command(
        sub,
        "score",
        "score `fetalplanes classify` results against a labelled dataset (top-1 with its 95 %% interval, per class)",
        _score,
        "fetalplanes data score results.csv --data ../shared/data/hc18_sample --json scores.json",
    )
    p.add_argument("csv", help="the CSV written by `fetalplanes classify --out`")
    add_data(p, use="the labels to score against")
    p.add_argument("--json", metavar="FILE", help="also write the scores as JSON")

    p = add_command(
        sub,
        "phantom",
        "write a synthetic phantom dataset in FETAL_PLANES_DB's exact layout (exercises the software only)",
        _phantom,
        "fetalplanes data phantom --out phantom_db --patients 160 --size 128",
    )
    add_out(p, "folder to write (CSV + Images/)", metavar="DIR")
    p.add_argument("--patients", type=int, default=160, help="number of patients (default 160)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--size", type=int, default=None, help="image width in pixels (default: varied like the real data)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")

    p = add_command(
        sub,
        "phantom-video",
        "write a synthetic scanner video-out (UI chrome, plane sweeps, freezes) with a per-frame truth CSV",
        _phantom_video,
        "fetalplanes data phantom-video --out phantom.mp4 --seconds 20",
    )
    add_out(p, "video file to write (.mp4 or .avi)", metavar="VIDEO")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--scan-width", type=int, default=128,
                   help="width (px) at which each plane is formed, as the phantom dataset's --size (default 128)")
    p.add_argument("--seed", type=int, default=0)

    p = add_command(
        sub,
        "slideshow",
        "write a scanner video-out of still images (each held with slight synthetic motion, freezes, cross-fades; "
        "a blank screen between exams) with a per-frame truth CSV",
        _slideshow,
        "fetalplanes data slideshow --out show.avi --folder ../shared/data/hc18_sample",
    )
    add_out(p, "video file to write (.avi: MJPG, or .mp4)", metavar="VIDEO")
    p.add_argument("--folder", action="append", default=[], metavar="DIR",
                   help="a labelled image folder (labels.csv: file,plane[,brain_plane]); one exam per --folder")
    p.add_argument("--real", metavar="SHARED_DATA",
                   help="the real images of ../shared/data in four exams (SonoNet grabs, FETAL_PLANES_DB, HC18)")
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--seed", type=int, default=0)

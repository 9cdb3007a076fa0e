"""`robot-rl calibrate intrinsics|handeye|workspace|crop|marker|selftest`: camera and cell
calibration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BOARD_HELP = (
    "ChArUco board as printed (defaults: 8x6 squares of 30 mm, 22 mm markers, DICT_5X5_100)"
)

INTRINSICS_DOC = """\
Camera intrinsics from ChArUco views.

Procedure:
  1. Print the board (robot-rl calibrate selftest uses the default board; measure the printed square
     with a caliper and pass --square-length/--marker-length in metres). Glue it flat on a rigid
     plate.
  2. Record 15-30 sharp images (the robot's calibration mode, or any folder of PNG/JPG images): the
     whole board visible, at different distances, tilted 20-40 degrees about both board axes, and
     placed so that over all images the board covers the image corners too. Hold still for each
     image.
  3. Run this command. Views with too few corners, collinear corners or a large reprojection error
     are rejected (listed with the reason); the result is written only when enough views remain.
Output: ROS camera_info YAML (image size, camera matrix, distortion, rectification, projection) plus
a `calibration:` record (reprojection error, number of views, rejected views, date).
"""

HANDEYE_DOC = """\
Hand-eye calibration: where a camera is, relative to the hand (wrist camera) or to the robot base
(fixed camera).

Procedure:
  eye_in_hand (camera on the wrist): fix the board on the table; eye_to_hand (fixed camera): clamp
  the board to the gripper. Then, in the robot's calibration mode, move the arm to 10-20 poses where
  the camera sees the whole board, turning the wrist 15-30 degrees about different axes between
  poses (pure translations do not determine the rotation), and take one sample at each pose while
  the arm is still. Each sample stores the image and the TCP pose from `current_pose`.
  Every OpenCV method (Tsai, Park, Horaud, Andreff, Daniilidis, and the robot-world Shah and Li) is
  fitted on part of the samples and judged by how well it predicts the board pose in the held-out
  samples; the best one is refitted on all samples. Samples whose robot motion disagrees with the
  camera motion are rejected.
Output: YAML with the transform (parent/child frame, translation, quaternion_xyzw), method, held-out
errors and date; with --twin-cameras also the camera entry of the twin's cameras.yaml.
"""

WORKSPACE_DOC = """\
Workspace bounds for the safety filter from recorded TCP positions.

Procedure: with the robot in hand-guiding/teleop mode and recording `current_pose`, move the TCP to
the extremes of the task space (all corners of the region the policy may use, lowest and highest
points). Save the poses as .npy or .csv (rows x y z [qw qx qy qz]) and run this command. The box is
the recorded extent plus --margin on every side, written as `safety.workspace_min/max` (other keys
of --out are kept).
"""

CROP_DOC = """\
Crop rectangles per camera for the policy and the reward classifier, with a PNG preview.

Give each crop in pixels (--policy X Y W H), or as a 3-D box in the world frame projected through a
fixed camera's calibration (--policy-box XMIN YMIN ZMIN XMAX YMAX ZMAX, or --policy-from-safety
safety.yaml to use the workspace box), with --cameras pointing at the twin-style cameras.yaml that
holds the camera. Crops are square by default (the policy resizes them to 128x128) and are kept
inside the image. Check the preview PNG (drawn on --image, a frame recorded from that camera) before
using the crops.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "calibrate",
        help="camera intrinsics, hand-eye, workspace bounds, image crops",
        description="Calibrate the cell: run each step's --help for the operator procedure.",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    fmt = argparse.RawDescriptionHelpFormatter

    p = steps.add_parser(
        "intrinsics",
        help="camera intrinsics from ChArUco views",
        description=INTRINSICS_DOC,
        formatter_class=fmt,
    )
    p.add_argument(
        "--samples",
        required=True,
        type=Path,
        help="folder of images (or a sample-collector folder)",
    )
    p.add_argument("--out", required=True, type=Path, help="camera_info YAML to write")
    p.add_argument("--camera-name", default="camera")
    p.add_argument(
        "--model",
        choices=("plumb_bob", "rational_polynomial"),
        default="plumb_bob",
        help="distortion model (rational_polynomial for wide-angle lenses)",
    )
    p.add_argument("--fit-k3", action="store_true", help="also fit k3 (plumb_bob); off by default")
    p.add_argument("--min-views", type=int, default=10)
    p.add_argument("--min-corners", type=int, default=12)
    p.add_argument("--max-view-error", type=float, default=1.0, help="px; worse views are dropped")
    p.add_argument(
        "--realsense",
        type=Path,
        help="JSON with factory intrinsics (width height fx fy ppx ppy model coeffs) as a start",
    )
    _board_args(p)
    p.set_defaults(func=_intrinsics)

    p = steps.add_parser(
        "handeye",
        help="camera pose in hand or base frame",
        description=HANDEYE_DOC,
        formatter_class=fmt,
    )
    p.add_argument(
        "--samples", required=True, type=Path, help="sample-collector folder (images + TCP poses)"
    )
    p.add_argument("--intrinsics", required=True, type=Path, help="camera_info YAML of this camera")
    p.add_argument("--setup", required=True, choices=("eye_in_hand", "eye_to_hand"))
    p.add_argument("--out", required=True, type=Path, help="hand-eye result YAML to write")
    p.add_argument("--camera-name", default="camera")
    p.add_argument("--methods", nargs="+", help="restrict the candidate methods (default: all)")
    p.add_argument("--min-samples", type=int, default=8)
    p.add_argument(
        "--max-angle-mismatch",
        type=float,
        default=0.5,
        help="deg; reject samples whose robot and camera rotations disagree by more (default 0.5)",
    )
    p.add_argument(
        "--max-pitch-mismatch",
        type=float,
        default=3.0,
        help="mm; same for motion along the rotation axis (default 3)",
    )
    p.add_argument(
        "--twin-cameras", type=Path, help="also write this camera into a twin cameras.yaml"
    )
    _board_args(p)
    p.set_defaults(func=_handeye)

    p = steps.add_parser(
        "workspace",
        help="safety workspace box from recorded TCP poses",
        description=WORKSPACE_DOC,
        formatter_class=fmt,
    )
    p.add_argument("--poses", required=True, type=Path, help=".npy or .csv of TCP poses")
    p.add_argument(
        "--margin", type=float, default=0.02, help="metres added on every side (default 0.02)"
    )
    p.add_argument(
        "--min-extent", type=float, default=0.02, help="refuse if the arm moved less along an axis"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="YAML to update (safety.workspace_min/max)"
    )
    p.set_defaults(func=_workspace)

    p = steps.add_parser(
        "crop",
        help="policy / reward-classifier crop rectangles with a PNG preview",
        description=CROP_DOC,
        formatter_class=fmt,
    )
    p.add_argument(
        "--camera", required=True, help="camera name (key in --cameras and in the output)"
    )
    p.add_argument("--image", required=True, type=Path, help="a frame recorded from that camera")
    p.add_argument("--out", required=True, type=Path, help="crops YAML to update")
    p.add_argument(
        "--preview", type=Path, help="preview PNG (default: crop_<camera>.png next to --out)"
    )
    p.add_argument("--cameras", type=Path, help="twin-style cameras.yaml (needed for 3-D boxes)")
    for role in ("policy", "reward"):
        g = p.add_mutually_exclusive_group(required=role == "policy")
        g.add_argument(f"--{role}", nargs=4, type=int, metavar=("X", "Y", "W", "H"))
        g.add_argument(
            f"--{role}-box",
            nargs=6,
            type=float,
            metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"),
        )
        g.add_argument(f"--{role}-from-safety", type=Path, metavar="SAFETY_YAML")
    p.add_argument("--margin-px", type=int, default=10)
    p.add_argument(
        "--no-square", action="store_true", help="keep the crop's aspect ratio instead of square"
    )
    p.set_defaults(func=_crop)

    p = steps.add_parser(
        "selftest",
        help="calibrate a rendered MuJoCo scene with known ground truth",
        description="Render a ChArUco board in MuJoCo from random hand poses for a wrist and a "
        "fixed camera with known intrinsics/extrinsics, calibrate both, and print the errors "
        "(focal %%, principal point px, hand-eye mm/deg, write-back px).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--views", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_selftest)

    p = steps.add_parser(
        "marker",
        help="write a printable fiducial marker (PNG) for the object tracker",
        description="Write a marker image with a white quiet zone, to print at 100 %% scale at "
        "--dpi. Measure the black square on the print and give that edge to the tracker as "
        "marker_size_m.",
    )
    p.add_argument("--dict", dest="dictionary", default="DICT_4X4_50", help="cv2.aruco dictionary")
    p.add_argument("--id", type=int, default=0)
    p.add_argument("--size-mm", type=float, default=30.0, help="edge of the black square")
    p.add_argument("--dpi", type=int, default=300)
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    p.set_defaults(func=_marker)


def _board_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("board", BOARD_HELP)
    g.add_argument("--squares", nargs=2, type=int, default=(8, 6), metavar=("X", "Y"))
    g.add_argument("--square-length", type=float, default=0.03, help="m")
    g.add_argument("--marker-length", type=float, default=0.022, help="m")
    g.add_argument("--dictionary", default="DICT_5X5_100")


def _board(args: argparse.Namespace):
    from calibration.charuco import BoardConfig

    return BoardConfig(
        args.squares[0], args.squares[1], args.square_length, args.marker_length, args.dictionary
    )


def _guarded(fn):
    """Report refusals and bad input as one clear message and exit status 2; nothing is written."""

    def run(args: argparse.Namespace) -> int:
        from calibration.errors import CalibrationError
        from controllers.config import ConfigError

        try:
            return fn(args)
        except (CalibrationError, ConfigError, OSError) as exc:
            print(f"robot-rl calibrate {args.step}: {exc}", file=sys.stderr)
            return 2

    return run


@_guarded
def _intrinsics(args: argparse.Namespace) -> int:
    from calibration.camera_yaml import from_realsense, save_camera_info
    from calibration.charuco import CharucoFinder
    from calibration.collector import load_samples
    from calibration.errors import CalibrationError
    from calibration.intrinsics import IntrinsicsConfig, calibrate_intrinsics

    board = _board(args)
    cfg = IntrinsicsConfig(
        min_views=args.min_views,
        min_corners=args.min_corners,
        max_view_error_px=args.max_view_error,
        distortion_model=args.model,
        fix_k3=not args.fit_k3,
    )
    samples = load_samples(args.samples)
    sizes = {img.shape[:2] for _, img, _ in samples}
    if len(sizes) != 1:
        raise CalibrationError(
            f"images in {args.samples} have different sizes {sorted(sizes)}; use one camera mode"
        )
    height, width = sizes.pop()
    initial = from_realsense(json.loads(args.realsense.read_text())) if args.realsense else None
    finder = CharucoFinder(board)
    result = calibrate_intrinsics(
        {name: finder.detect(img) for name, img, _ in samples}, board, (width, height), cfg, initial
    )
    save_camera_info(args.out, result.camera, args.camera_name, result.summary())
    c = result.camera
    print(
        f"wrote {args.out}: fx={c.fx:.2f} fy={c.fy:.2f} cx={c.cx:.2f} cy={c.cy:.2f} "
        f"rms={result.rms_px:.3f} px from {len(result.view_errors_px)} views, "
        f"{len(result.rejected)} rejected"
    )
    for name, why in result.rejected.items():
        print(f"  rejected {name}: {why}")
    return 0


@_guarded
def _handeye(args: argparse.Namespace) -> int:
    from calibration.camera_yaml import TwinCamera, load_camera_info, update_twin_cameras
    from calibration.charuco import CharucoFinder, make_board
    from calibration.collector import load_samples
    from calibration.files import write_yaml
    from calibration.handeye import ALL_METHODS, HandEyeConfig, calibrate_hand_eye, gate_samples

    board = _board(args)
    cam = load_camera_info(args.intrinsics)
    cfg = HandEyeConfig(
        setup=args.setup,
        methods=tuple(args.methods or ALL_METHODS),
        min_samples=args.min_samples,
        folds=min(4, args.min_samples),
        max_angle_mismatch_deg=args.max_angle_mismatch,
        max_pitch_mismatch_mm=args.max_pitch_mismatch,
    )
    samples, rejected = gate_samples(
        load_samples(args.samples), CharucoFinder(board), cam, cfg, str(args.samples)
    )
    points = make_board(board).getChessboardCorners().astype(float)
    result = calibrate_hand_eye(samples, points, cfg, args.camera_name, rejected)
    write_yaml(args.out, result.to_dict())
    if args.twin_cameras:
        update_twin_cameras(
            args.twin_cameras,
            args.camera_name,
            TwinCamera(cam, result.parent_frame, result.T_parent_cam),
        )
    err = result.heldout[result.method]
    print(
        f"wrote {args.out}: method {result.method}, held-out error {err['trans_mm']:.2f} mm / "
        f"{err['rot_deg']:.3f} deg, {len(result.samples_used)} samples, "
        f"{len(result.rejected)} rejected"
    )
    for name, why in result.rejected.items():
        print(f"  rejected {name}: {why}")
    return 0


@_guarded
def _workspace(args: argparse.Namespace) -> int:
    from calibration.workspace import load_positions, workspace_box, write_safety_yaml

    positions = load_positions(args.poses)
    lo, hi = workspace_box(positions, args.margin, args.min_extent)
    write_safety_yaml(args.out, lo, hi)
    print(
        f"wrote {args.out}: workspace_min={lo.round(4).tolist()} "
        f"workspace_max={hi.round(4).tolist()} "
        f"from {len(positions)} poses, margin {args.margin} m"
    )
    return 0


@_guarded
def _crop(args: argparse.Namespace) -> int:
    from calibration.camera_yaml import load_twin_camera
    from calibration.crops import Crop, box_corners, fit_crop, project_world_points, save_crops
    from calibration.files import read_image
    from controllers.config import ConfigError, load_yaml

    image = read_image(args.image)
    size = (image.shape[1], image.shape[0])
    crops = {}
    for role in ("policy", "reward"):
        rect, box, safety = (
            getattr(args, role),
            getattr(args, f"{role}_box"),
            getattr(args, f"{role}_from_safety"),
        )
        if rect is not None:
            crops[role] = Crop(*rect)
            continue
        if box is None and safety is None:
            continue
        if args.cameras is None:
            raise ConfigError(
                f"--{role}-box/--{role}-from-safety need --cameras (the calibrated cameras.yaml)"
            )
        if safety is not None:
            s = load_yaml(safety).get("safety") or {}
            if "workspace_min" not in s or "workspace_max" not in s:
                raise ConfigError(f"{safety}: no safety.workspace_min/workspace_max")
            box = [*s["workspace_min"], *s["workspace_max"]]
        camera = load_twin_camera(args.cameras, args.camera)
        px = project_world_points(box_corners(box[:3], box[3:]), camera)
        crops[role] = fit_crop(px, size, args.margin_px, square=not args.no_square)
    save_crops(args.out, args.camera, crops, size, image, args.preview)
    for role, c in crops.items():
        print(f"{args.camera}.{role}: x={c.x} y={c.y} width={c.width} height={c.height}")
    preview = args.preview or args.out.with_name(f"crop_{args.camera}.png")
    print(f"wrote {args.out} and preview {preview}")
    return 0


@_guarded
def _selftest(args: argparse.Namespace) -> int:
    from calibration.selftest import run

    result = run(n_views=args.views, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<18} {value}")
    return 0


@_guarded
def _marker(args: argparse.Namespace) -> int:
    from calibration.files import write_png
    from calibration.markers import marker_image

    image = marker_image(args.dictionary, args.id, args.size_mm, args.dpi)
    write_png(args.out, image)
    print(
        f"wrote {args.out}: {args.dictionary} id {args.id}, {image.shape[1]} px square; print at "
        f"{args.dpi} dpi (100 %), then measure the black square (nominal {args.size_mm} mm)"
    )
    return 0

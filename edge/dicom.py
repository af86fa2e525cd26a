"""DICOM images (ultrasound: single frames and cine loops) as the project's images: uint8 gray or BGR.

pydicom (and, for compressed pixel data, a decoder plugin) is imported inside the functions that use it:
``pip install 'fetalplanes[dicom]'`` brings pydicom, Pillow (JPEG baseline/extended, JPEG 2000), pylibjpeg
and pylibjpeg-openjpeg. Photometric interpretations: MONOCHROME1 (inverted), MONOCHROME2, RGB,
YBR_FULL / YBR_FULL_422 (to RGB by pydicom), YBR_RCT / YBR_ICT (JPEG 2000, RGB from the decoder),
PALETTE COLOR (through the file's colour lookup table). More than 8 bits stored: scaled by BitsStored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edge.errors import FetalPlanesError
from edge.files import DICOM_SUFFIXES

INSTALL_HINT = "pip install 'fetalplanes[dicom]' (pydicom, Pillow, pylibjpeg, pylibjpeg-openjpeg)"
#: photometric interpretations pydicom hands over as RGB (decoded with ``as_rgb=True``)
_RGB_LIKE = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")


def is_dicom(path: str | Path) -> bool:
    """A DICOM file by its name (.dcm, .dicom)."""
    return Path(path).suffix.lower() in DICOM_SUFFIXES


def _pydicom():
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401  (pydicom >= 3)
    except ImportError as exc:
        raise FetalPlanesError(
            f"DICOM files were given, and reading them needs pydicom >= 3 with its pixel decoders ({exc})",
            hint=f"{INSTALL_HINT}; or export the images as PNG",
        ) from None
    return pydicom


def _read_dataset(path: Path, header_only: bool = False):
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise FetalPlanesError(f"{path}: no such file", hint="check the path")
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=header_only)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise FetalPlanesError(
            f"{path}: not a readable DICOM file ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})",
            hint="the file is corrupt or not DICOM; re-export it from the archive",
        ) from None
    if not header_only and "PixelData" not in ds and "FloatPixelData" not in ds:
        raise FetalPlanesError(f"{path}: this DICOM file carries no image (no PixelData)",
                               hint="give image DICOM (e.g. ultrasound), not reports or structured data")
    return ds


def missing_decoder(ds: Any, path: Path) -> FetalPlanesError | None:
    """The error to raise when no installed plugin can decode the file's transfer syntax (else None)."""
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is None or not tsyntax.is_compressed:
        return None
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        return FetalPlanesError(
            f"{path}: its pixel data is compressed as {tsyntax.name} ({tsyntax}), which pydicom cannot decode",
            hint="export the images uncompressed or as PNG from the archive",
        )
    if decoder.is_available:
        return None
    needs = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
    return FetalPlanesError(
        f"{path}: its pixel data is compressed as {tsyntax.name} ({tsyntax}), and no decoder for it is installed "
        f"here (pydicom needs one of: {needs})",
        hint=INSTALL_HINT + (" - JPEG lossless and JPEG-LS need pylibjpeg-libjpeg (GPL-3) or python-gdcm"
                             if "libjpeg" in needs and "pillow" not in needs else ""),
    )


def check_readable(paths: Iterable[str | Path]) -> None:
    """Before any work: pydicom is there, and a decoder for every DICOM file's transfer syntax (headers only).

    A file whose header cannot be read is left to the reader (one unreadable image, not a stop).
    """
    paths = [Path(p) for p in paths if is_dicom(p)]
    if paths:
        _pydicom()
    for p in paths:
        try:
            ds = _read_dataset(p, header_only=True)
        except FetalPlanesError:
            continue
        err = missing_decoder(ds, p)
        if err is not None:
            raise err


def _bits(ds: Any) -> int:
    return int(getattr(ds, "BitsStored", 8) or 8)


def _to_uint8(arr: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    if arr.dtype == np.uint8 and bits <= 8:
        return arr
    arr = arr.astype(np.float32)
    if signed:
        arr = arr + float(1 << (bits - 1))
    return np.clip(arr * (255.0 / ((1 << bits) - 1)) + 0.5, 0, 255).astype(np.uint8)


def convert_frame(ds: Any, arr: np.ndarray) -> np.ndarray:
    """One decoded frame -> uint8 gray (H, W) or BGR (H, W, 3), per its photometric interpretation."""
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper().strip()
    bits = _bits(ds)
    signed = int(getattr(ds, "PixelRepresentation", 0) or 0) == 1
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(arr, ds)
        lut_bits = int(ds.RedPaletteColorLookupTableDescriptor[2]) if "RedPaletteColorLookupTableDescriptor" in ds else 8
        return np.ascontiguousarray(_to_uint8(rgb, 16 if lut_bits > 8 else 8, False)[..., ::-1])
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        gray = _to_uint8(arr, bits, signed)
        if gray.ndim == 3:  # (H, W, 1)
            gray = gray[..., 0]
        return np.ascontiguousarray(255 - gray if photometric == "MONOCHROME1" else gray)
    if photometric in _RGB_LIKE and arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(_to_uint8(arr, bits, False)[..., ::-1])  # RGB -> BGR, as the project expects
    raise FetalPlanesError(
        f"photometric interpretation {photometric!r} with pixel shape {arr.shape} is not supported",
        hint="export the images as MONOCHROME2, RGB, YBR_FULL(_422) or PALETTE COLOR DICOM, or as PNG",
    )


@dataclass
class DicomImage:
    """An opened DICOM file: its frame count, its exam (PatientID / StudyInstanceUID) and its frames."""

    path: Path
    dataset: Any
    frames: int
    exam: str

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as uint8 gray or BGR."""
        from pydicom.pixels import pixel_array

        if not 0 <= index < self.frames:
            raise IndexError(f"{self.path}: frame {index} of {self.frames}")
        err = missing_decoder(self.dataset, self.path)
        if err is not None:
            raise err
        try:
            arr = pixel_array(self.dataset, index=index if self.frames > 1 else None, as_rgb=True)
        except Exception as exc:  # pydicom and its plugins raise their own types
            raise FetalPlanesError(
                f"{self.path}: frame {index + 1} of {self.frames} cannot be decoded "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
                hint="the file is corrupt or truncated; re-export it from the archive",
            ) from None
        try:
            return convert_frame(self.dataset, np.asarray(arr))
        except FetalPlanesError as exc:
            raise FetalPlanesError(f"{self.path}: {exc.message}", hint=exc.hint) from None

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.frames):
            yield self.frame(i)


def open_dicom(path: str | Path) -> DicomImage:
    """Read a DICOM file's dataset (pixels decoded frame by frame, on demand)."""
    path = Path(path)
    ds = _read_dataset(path)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    patient = str(getattr(ds, "PatientID", "") or "")
    study = str(getattr(ds, "StudyInstanceUID", "") or getattr(ds, "StudyDate", "") or "")
    exam = "/".join(x for x in (patient, study) if x)
    return DicomImage(path, ds, max(1, frames), exam)


def read_dicom(path: str | Path, frame: int | None = None) -> tuple[np.ndarray, str]:
    """One frame (default: the middle one of a cine loop) as uint8 gray/BGR, and the exam id ('' if none)."""
    image = open_dicom(path)
    index = image.frames // 2 if frame is None else frame
    return image.frame(index), image.exam


def frame_count(path: str | Path) -> int:
    """Frames of a DICOM file, from its header only (1 when the header cannot be read)."""
    try:
        ds = _read_dataset(Path(path), header_only=True)
    except FetalPlanesError:
        return 1
    return max(1, int(getattr(ds, "NumberOfFrames", 1) or 1))

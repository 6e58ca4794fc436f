"""The refined frame size for the official templates' frame sizes, worked out by hand (short side up to one tile,
both sides rounded up to multiples of 32, aspect kept, never scaled down), and errors that speak in pixels."""

import math

import pytest

from cascadev_core.sizing import cascade_size, tile_pixels


@pytest.mark.parametrize(
    ("template", "width", "height", "refined"),
    [
        ("Wan 2.2 TI2V 5B / 14B", 1280, 704, (1888, 1024)),  # x1024/704: 1861.8 -> 59 x 32
        ("Wan 2.1 I2V", 640, 640, (1024, 1024)),
        ("Wan 2.1 T2V 1.3B", 832, 480, (1792, 1024)),  # x1024/480: 1774.9 -> 56 x 32
        ("SVD-XT", 1024, 576, (1824, 1024)),  # x1024/576: 1820.4 -> 57 x 32
        ("LTXV", 768, 512, (1536, 1024)),
        ("HunyuanVideo 1.5 720p", 1280, 720, (1824, 1024)),
        ("already 2K", 2048, 1152, (2048, 1152)),
        ("short side just under a tile", 1000, 1100, (1024, 1152)),  # x1.024: 1126.4 -> 36 x 32
    ],
)
def test_auto_scales_the_short_side_to_one_tile(template, width, height, refined):
    size = cascade_size(height, width)
    assert (size.width, size.height) == refined
    assert size.latent == (refined[1] // 8, refined[0] // 8) and size.resized == ((width, height) != refined)


def test_explicit_targets_and_the_tile_of_the_loaded_model():
    assert (lambda s: (s.width, s.height))(cascade_size(720, 1280, mode="long_side", value=2048)) == (2048, 1152)
    assert (lambda s: (s.width, s.height))(cascade_size(640, 640, mode="scale", value=2.0)) == (1280, 1280)
    assert tile_pixels(16) == 128  # a tiny model's tile: 64x64 frames go to 128x128, not 1024
    assert (lambda s: (s.width, s.height))(cascade_size(64, 64, tile=tile_pixels(16))) == (128, 128)
    assert cascade_size(1024, 1024, mode="none").resized is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(height=640, width=640, mode="scale", value=1.0), "640x640 pixels is smaller than one model tile "
         "(1024x1024 pixels); use 'auto', or a long side of at least 1024 pixels"),
        (dict(height=720, width=1280, mode="none"), "'none' keeps the input's 1280x720 pixels, but both sides must "
         "be multiples of 32; choose 'auto' (here 1824x1024)"),
        (dict(height=1, width=1, mode="none"), "choose 'auto' (here 1024x1024)"),
        (dict(height=720, width=1280, mode="long_side", value=0.0), "needs resize_value > 0: the long side in pixels"),
        (dict(height=720, width=1280, mode="scale", value=math.nan), "needs resize_value > 0: a factor"),
        (dict(height=0, width=8), "the frames are 8x0 pixels; expected a non-empty image"),
        (dict(height=8, width=8, mode="fit"), "expected one of auto, long_side, scale, none, got 'fit'"),
    ],
)  # fmt: skip
def test_errors_name_the_setting_and_speak_in_pixels(kwargs, message):
    with pytest.raises(ValueError) as err:
        cascade_size(**kwargs, where="CascadeV Encode Frames: resize")
    assert str(err.value).startswith("CascadeV Encode Frames: resize: ") and message in str(err.value)

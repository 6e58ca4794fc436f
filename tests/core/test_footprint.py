"""Whole-run memory estimates in bytes worked out by hand, and the refusal that names the input, size and bytes."""

import pytest

from cascadev_core.footprint import GIB, DoesNotFit, check_fits, effnet_call, frames_output, refine_state


def test_estimates_in_bytes():
    # 121 frames at 1888x1024: 128 x 236 latent pixels each, 40 float32 values per latent pixel
    assert refine_state(1, 121, 1024, 1888).bytes == 121 * 128 * 236 * 40 * 4 == 584_826_880
    assert frames_output(121, 1024, 1888).bytes == 121 * 1024 * 1888 * 3 * 4 == 2_807_169_024
    assert effnet_call(1, 1024, 1888, dtype_bytes=2).bytes == 1024 * 1888 * 27 * 2


def test_a_size_over_the_total_is_refused_with_the_bytes_and_the_fix():
    estimates = [refine_state(1, 121, 1024, 1888), frames_output(121, 1024, 1888)]
    check_fits(estimates, {"model": "host", "host": 4 * GIB}, where="w", size="s", fix="f")  # 3.16 GiB fits
    with pytest.raises(DoesNotFit) as err:  # the model runs in RAM: both estimates count against it
        check_fits(estimates, {"model": "host", "host": 3 * GIB}, where="CascadeV Encode Frames: images",
                   size="121 frames of 1888x1024 pixels", fix="choose a smaller resize")  # fmt: skip
    assert str(err.value) == (
        "CascadeV Encode Frames: images: 121 frames of 1888x1024 pixels needs about 3.2 GiB (the refine's latents "
        "0.5 GiB, the decoded frames 2.6 GiB) but this machine's RAM has 3.0 GiB in total; choose a smaller resize"
    )


def test_each_kind_of_memory_is_checked_against_its_own_total():
    estimates = [refine_state(1, 121, 1024, 1888), frames_output(121, 1024, 1888)]
    check_fits(estimates, {"model": 1 * GIB, "host": 3 * GIB}, where="w", size="s", fix="f")  # 0.54 and 2.6 GiB
    with pytest.raises(DoesNotFit, match="the model's device has 0.5 GiB in total"):
        check_fits(estimates, {"model": GIB // 2, "host": 3 * GIB}, where="w", size="s", fix="f")

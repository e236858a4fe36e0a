"""ebmlib.book.stream: one seed, independent streams by purpose."""

import pytest
import torch

from ebmlib.book import stream


def test_the_same_purpose_gives_the_same_stream_and_distinct_purposes_distinct_ones():
    draw = lambda *args: torch.randn(1000, generator=stream(*args))  # noqa: E731
    assert torch.equal(draw(0, "fit", 3), draw(0, "fit", 3))
    streams = [draw(0, "data"), draw(0, "fit", 0), draw(0, "fit", 1), draw(1, "fit", 0)]
    for i, a in enumerate(streams):
        for b in streams[i + 1 :]:
            # no shared draws, and no correlation beyond 4.5 standard errors (1 / sqrt(1000))
            assert not (a == b).any()
            assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 4.5 / 1000**0.5


def test_no_purpose_reproduces_the_plain_seed():
    """The collision this module prevents: manual_seed(SEED) for the data, and a fit's stream."""
    data = torch.randn(100, generator=torch.Generator().manual_seed(0))
    fit = torch.randn(100, generator=stream(0, "fit", 0))
    assert not (data == fit).any()


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((-1, "fit"), ValueError, "seed"),
        ((0.5, "fit"), TypeError, "seed"),
        ((0,), ValueError, "purpose"),
        ((0, "fit", -1), ValueError, "purpose"),
        ((0, 1.5), TypeError, "purpose"),
        ((0, True), TypeError, "purpose"),
    ],
)
def test_bad_arguments_are_named(args, error, message):
    with pytest.raises(error, match=message):
        stream(*args)

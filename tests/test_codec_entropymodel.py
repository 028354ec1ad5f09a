import numpy as np
import pytest

from codec import BitstreamError, entropymodel
from codec.entropymodel import AdaptiveScales, BlockSpec, compress, decompress


def _blocks(seed: int):
    rng = np.random.default_rng(seed)
    scales_a, scales_b = rng.uniform(0.2, 5, 20), rng.uniform(0.2, 5, 40)
    a = np.clip(np.rint(rng.laplace(0, scales_a)), -64, 64).astype(np.int64)
    b = np.clip(np.rint(rng.laplace(0, scales_b)), -8, 8).astype(np.int64)
    return [(a, BlockSpec(-64, 64, scales_a)), (b, BlockSpec(-8, 8, scales_b))]


@pytest.mark.parametrize("seed", range(20))
def test_compress_decompress_is_exact(seed):
    blocks = _blocks(seed)
    data = compress(blocks)
    decoded = decompress(data, [spec for _, spec in blocks])
    for (symbols, _), out in zip(blocks, decoded, strict=True):
        assert np.array_equal(symbols, out)


def test_output_is_trimmed_below_whole_words():
    lengths = {len(compress(_blocks(seed))) % 4 for seed in range(20)}
    assert lengths != {0}


def test_symbols_outside_the_model_range_are_refused():
    with pytest.raises(ValueError, match="outside the model range"):
        compress([(np.array([5]), BlockSpec(-2, 2, np.ones(1)))])


def test_one_value_ranges_are_refused_before_the_range_coder_sees_them():
    with pytest.raises(ValueError, match=r"symbol range \[0, 0\] needs two values or more"):
        BlockSpec(0, 0, np.ones(3))


def test_a_range_coder_panic_becomes_a_bitstream_error(monkeypatch):
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic
        pass

    def panic(data, specs):
        raise PanicException("assertion failed: support.end() > support.start()")

    def interrupted(data, specs):
        raise SystemExit(3)

    monkeypatch.setattr(entropymodel, "_decode_words", panic)
    with pytest.raises(BitstreamError, match="range coder panicked: assertion failed"):
        decompress(b"\x00", [BlockSpec(-1, 1, np.ones(1))])
    monkeypatch.setattr(entropymodel, "_decode_words", interrupted)
    with pytest.raises(SystemExit):  # nothing else that derives from BaseException is swallowed
        decompress(b"\x00", [BlockSpec(-1, 1, np.ones(1))])


def test_garbage_decodes_to_in_range_symbols_or_bitstream_error():
    spec = BlockSpec(-3, 3, np.ones(10))
    for seed in range(50):
        data = np.random.default_rng(seed).bytes(seed % 9)
        try:
            [out] = decompress(data, [spec])
        except BitstreamError:
            continue
        assert out.min() >= -3 and out.max() <= 3


def test_adaptive_scales_follow_residual_magnitude_deterministically():
    scales = AdaptiveScales(np.array([1.0, 1.0]))
    for _ in range(50):
        scales.update(np.array([0, 6]))
    assert scales.scales()[0] < 0.01
    assert scales.scales()[1] == pytest.approx(6.0, rel=0.01)
    twin = scales.copy()
    twin.update(np.array([100, 100]))
    assert scales.scales()[1] == pytest.approx(6.0, rel=0.01)  # the original is untouched
    assert twin.scales()[0] == pytest.approx(100 / 8, rel=0.01)

import pytest

from codec import BitstreamError, FeatureGroup, FeatureSchema, feature_map_schema, motion_schema
from codec.schema import model_schema
from models.config import get_preset


def test_motion_schema_layout_is_keypoints_then_jacobians():
    schema = motion_schema()
    assert schema.size == 60
    [(kp, kp_part), (jac, jac_part)] = schema.slices()
    assert (kp.name, kp_part) == ("keypoints", slice(0, 20))
    assert (jac.name, jac_part) == ("jacobians", slice(20, 60))
    assert motion_schema(num_kp=5, jacobians=False).size == 10


def test_schema_dict_round_trip_and_fingerprint():
    schema = feature_map_schema(channels=2)
    again = FeatureSchema.from_dict(schema.to_dict())
    assert again == schema
    assert again.fingerprint() == schema.fingerprint() != motion_schema().fingerprint()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "groups"),
        ({"groups": [{"name": "x"}]}, "exactly the fields"),
        ({"groups": "nope"}, "exactly the fields"),
        ({"groups": []}, "at least one group"),
    ],
)
def test_bad_schema_dict_is_refused(data, message):
    with pytest.raises(BitstreamError, match=message):
        FeatureSchema.from_dict(data)


def test_bad_group_values_are_refused():
    with pytest.raises(ValueError, match="step and spreads must be positive"):
        FeatureGroup("g", 4, 0.0, -1, 1, 1, 1)
    with pytest.raises(ValueError, match="must be below"):
        FeatureGroup("g", 4, 0.1, 1, -1, 1, 1)
    with pytest.raises(ValueError, match="unique"):
        FeatureSchema((FeatureGroup("g", 1, 0.1, -1, 1, 1, 1),) * 2)


def test_a_model_configs_schema_has_its_keypoints_and_jacobians() -> None:
    assert model_schema(get_preset("lite-128")) == motion_schema(10, True)
    assert model_schema(get_preset("tiny", num_kp=5, estimate_jacobian=False)).size == 10

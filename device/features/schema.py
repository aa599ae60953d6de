"""The fixed, versioned feature schema every model is trained on and checked against."""

from __future__ import annotations

from device.features.geometry import GEOMETRY_FEATURES

FEATURE_SCHEMA_VERSION = 2  # v2: geometry features after the blendshapes

# MediaPipe FaceLandmarker v2 blendshape categories, in the order the model outputs them.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
)

THERMAL_ROIS: tuple[str, ...] = ("nose", "forehead", "left_eye", "right_eye")

BLENDSHAPE_FEATURES: tuple[str, ...] = tuple(f"blendshape.{name}" for name in BLENDSHAPE_NAMES)
THERMAL_FEATURES: tuple[str, ...] = tuple(
    f"thermal.{roi}.{stat}" for roi in THERMAL_ROIS for stat in ("mean_c", "delta_c")
)
# What one RGB face gives (FaceFeatures.rgb_vector), in this order.
RGB_FEATURES: tuple[str, ...] = BLENDSHAPE_FEATURES + GEOMETRY_FEATURES
FEATURE_NAMES: tuple[str, ...] = RGB_FEATURES + THERMAL_FEATURES


def unknown_features(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names a model asks for that this schema does not define."""
    known = set(FEATURE_NAMES)
    return [name for name in names if name not in known]

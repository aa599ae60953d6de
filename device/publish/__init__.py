"""Publishing: the only way anything leaves the device. Its sole input type is LabelEvent."""

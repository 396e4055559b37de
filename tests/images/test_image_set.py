"""Image references written into the compiled pipeline: another registry, another tag, or pinned by digest."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from silverset.components.common import images
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.images import ImageSet

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_defaults_are_the_released_images():
    default = ImageSet()
    assert (default.cpu, default.gpu, default.server) == (images.CPU_IMAGE, images.GPU_IMAGE, images.SERVER_IMAGE)
    assert default.cpu == "ghcr.io/silverset/silverset-cpu:0.1.0" and not default.pinned


def test_registry_with_port_and_path_and_a_tag():
    s = ImageSet(registry="registry.example.com:5000/ml/vision/", tag="2026.01-rc_1")
    assert s.cpu == "registry.example.com:5000/ml/vision/silverset-cpu:2026.01-rc_1"
    assert s.server == "registry.example.com:5000/ml/vision/silverset-index-server:2026.01-rc_1"


def test_a_digest_tag_references_by_digest_and_refuses_more_than_one_image():
    s = ImageSet(registry="ghcr.io/acme", tag=DIGEST)
    assert s.cpu == f"ghcr.io/acme/silverset-cpu@{DIGEST}" and s.pinned and s.is_pinned("cpu")
    s.check_used({"cpu"})
    assert s.pull_policy("cpu") == "IfNotPresent" and ImageSet().pull_policy("cpu") == "Always"
    with pytest.raises(
        SilversetInputError,
        match=r"--image-tag sha256:0123456789ab\.\.\.: a digest names one image, "
        r"and these steps run silverset-cpu, silverset-gpu",
    ):
        s.check_used({"cpu", "gpu"})


def test_per_image_digests_pin_each_image_beside_the_tag():
    gpu_digest = "sha256:" + "f" * 64
    s = ImageSet(tag="0.2.0", digests={"cpu": DIGEST, "gpu": gpu_digest})
    assert s.cpu == f"ghcr.io/silverset/silverset-cpu:0.2.0@{DIGEST}"
    assert s.gpu == f"ghcr.io/silverset/silverset-gpu:0.2.0@{gpu_digest}"
    assert s.server == "ghcr.io/silverset/silverset-index-server:0.2.0" and not s.is_pinned("server")
    assert (s.pull_policy("gpu"), s.pull_policy("server")) == ("IfNotPresent", "Always")
    s.check_used({"cpu", "gpu"})
    with pytest.raises(ValidationError, match="frozen"):
        s.tag = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"registry": "ghcr.io/Acme"}, "registry 'ghcr.io/Acme': path component 'Acme' must be lowercase"),
        ({"registry": "https://ghcr.io/acme"}, "registry 'https://ghcr.io/acme': give host/path without a scheme"),
        ({"registry": "ghcr.io/acme:1.0"}, "registry 'ghcr.io/acme:1.0': a tag or digest goes in the tag"),
        ({"registry": "bad_host!/acme"}, "registry 'bad_host!/acme': 'bad_host!' is not a registry host"),
        ({"registry": "  "}, "registry is empty"),
        ({"registry": "ghcr.io/" + "a" * 240}, "would be over 255 characters"),
        ({"tag": "sha256:abc"}, "tag 'sha256:abc' is not a digest: expected sha256: and 64 lowercase hex"),
        ({"tag": "sha256:" + "A" * 64}, "is not a digest"),
        ({"tag": "-rc1"}, "tag '-rc1': up to 128 letters"),
        ({"tag": "v1/2"}, "tag 'v1/2': up to 128 letters"),
        ({"tag": "é1"}, "tag 'é1': up to 128 letters"),
        ({"tag": "x" * 129}, "up to 128 letters"),
        ({"digests": {"cpu": "latest"}}, "digest of the cpu image 'latest' is not a digest"),
        ({"tag": DIGEST, "digests": {"cpu": DIGEST}}, "is already a digest; with per-image digests give a tag"),
    ],
)
def test_bad_parts_are_refused_naming_the_part(kwargs, message):
    with pytest.raises(ValidationError) as info:
        ImageSet(**kwargs)
    assert message in str(info.value)
    with pytest.raises(ValidationError, match="Input should be 'cpu', 'gpu' or 'server'"):
        ImageSet(digests={"tpu": DIGEST})

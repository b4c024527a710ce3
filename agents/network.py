"""The agent's network: a small-board residual CNN trunk with separate policy and value heads.

Built for boards of a few squares a side: 3x3 convolutions with padding 1 and no striding,
so every trunk layer keeps the full ``H x W`` map (per-square probes need it; SB3's
default NatureCNN cannot even run on a 6x7 input). Layout, with the module names
`probe_layers` reports and `probes/` hooks::

    features_extractor.stem            conv 3x3 (C_in -> C) + ReLU           C x H x W
    features_extractor.blocks.<i>      residual block (two 3x3 convs)         C x H x W
    mlp_extractor.policy_net.conv      policy head: 1x1 conv + ReLU           P x H x W
    mlp_extractor.policy_net.fc        policy head: linear + ReLU             hidden
    action_net                         policy logits (pre-mask)               num_actions
    mlp_extractor.value_net.conv       value head: 1x1 conv + ReLU            V x H x W
    mlp_extractor.value_net.fc         value head: linear + ReLU              hidden
    value_net                          state value                            1

No normalisation layers: PPO evaluates the same network in eval mode (rollouts) and train
mode (updates), and batch statistics would make the two disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the network (stored with every checkpoint).

    :param channels: trunk width C.
    :param blocks: number of residual blocks.
    :param head_channels: channels of the 1x1 convolution that opens each head.
    :param head_hidden: width of each head's hidden linear layer.
    """

    channels: int = 64
    blocks: int = 4
    head_channels: int = 4
    head_hidden: int = 128

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < (0 if name == "blocks" else 1):
                raise ValueError(f"NetworkConfig.{name} must be a positive integer, got {value!r}")


class ResidualBlock(nn.Module):
    """``relu(x + conv(relu(conv(x))))`` with 3x3 convolutions that keep the board's shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class BoardResNet(BaseFeaturesExtractor):
    """SB3 features extractor: stem convolution plus residual blocks; outputs the flattened map.

    :param observation_space: a ``Box`` of shape ``(C_in, H, W)``.
    :param channels: trunk width.
    :param blocks: number of residual blocks.
    """

    def __init__(self, observation_space: gym.spaces.Box, channels: int = 64, blocks: int = 4) -> None:
        shape = observation_space.shape
        if shape is None or len(shape) != 3:
            raise ValueError(f"BoardResNet needs (channels, height, width) observations, got shape {shape}")
        c_in, h, w = shape
        super().__init__(observation_space, features_dim=channels * h * w)
        self.map_shape = (channels, h, w)
        self.stem = nn.Sequential(nn.Conv2d(c_in, channels, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(ResidualBlock(channels) for _ in range(blocks))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = self.stem(observations)
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)


class ConvHead(nn.Module):
    """1x1 convolution + ReLU on the trunk's map, then a hidden linear layer + ReLU."""

    def __init__(self, map_shape: tuple[int, int, int], head_channels: int, hidden: int) -> None:
        super().__init__()
        c, h, w = map_shape
        self.map_shape = map_shape
        self.conv = nn.Sequential(nn.Conv2d(c, head_channels, 1), nn.ReLU())
        self.fc = nn.Sequential(nn.Linear(head_channels * h * w, hidden), nn.ReLU())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.conv(features.view(-1, *self.map_shape))
        return self.fc(x.flatten(1))


class SeparateHeads(nn.Module):
    """Stands in SB3's ``mlp_extractor`` slot: a policy head and a value head on the shared trunk."""

    def __init__(self, map_shape: tuple[int, int, int], head_channels: int, hidden: int) -> None:
        super().__init__()
        self.policy_net = ConvHead(map_shape, head_channels, hidden)
        self.value_net = ConvHead(map_shape, head_channels, hidden)
        self.latent_dim_pi = hidden
        self.latent_dim_vf = hidden

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy_net(features), self.value_net(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


class BoardPolicy(MaskableActorCriticPolicy):
    """MaskablePPO actor-critic with the `BoardResNet` trunk and `SeparateHeads`.

    Pass sizes as ``policy_kwargs=dict(network=NetworkConfig(...).__dict__)``; the trunk is
    shared between the heads (one set of activations to probe).
    """

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space, lr_schedule: Any,
                 network: dict | None = None, **kwargs: Any) -> None:
        self.network_config = NetworkConfig(**(network or {}))
        cfg = self.network_config
        kwargs.setdefault("features_extractor_class", BoardResNet)
        kwargs.setdefault("features_extractor_kwargs", {"channels": cfg.channels, "blocks": cfg.blocks})
        kwargs.setdefault("share_features_extractor", True)
        kwargs.setdefault("ortho_init", True)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.trunk_dtype: torch.dtype | None = None  # set by `SelfPlayPPO` during its updates only

    def extract_features(self, obs: torch.Tensor, features_extractor: BaseFeaturesExtractor | None = None
                         ) -> torch.Tensor:
        """The trunk's features; in float32 unless `trunk_dtype` asks for a lower-precision autocast
        (the heads and everything after them stay float32)."""
        if self.trunk_dtype is None:
            return super().extract_features(obs, features_extractor)
        with torch.autocast(obs.device.type, dtype=self.trunk_dtype):
            features = super().extract_features(obs, features_extractor)
        return features.float()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["network"] = asdict(self.network_config)  # so that copies and reloads get the same sizes
        return data

    def _build_mlp_extractor(self) -> None:
        cfg = self.network_config
        self.mlp_extractor = SeparateHeads(self.features_extractor.map_shape, cfg.head_channels, cfg.head_hidden)


def random_weight_network(policy: Any, seed: int) -> Any:
    """A network of `policy`'s architecture with fresh random weights (``torch.manual_seed(seed)``), in eval
    mode: the random-weight control of probes and dictionaries."""
    torch.manual_seed(seed)
    fresh = type(policy)(**policy._get_constructor_parameters())
    fresh.set_training_mode(False)
    return fresh


def policy_forward(policy: nn.Module, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-mask policy logits ``[N, A]`` and values ``[N, 1]`` of a `BoardPolicy` (differentiable)."""
    features = policy.extract_features(obs)
    latent_pi, latent_vf = policy.mlp_extractor(features)
    return policy.action_net(latent_pi), policy.value_net(latent_vf)


@dataclass(frozen=True)
class LayerInfo:
    """A layer `probes/` can hook: its module name, activation shape (no batch) and whether spatial."""

    name: str
    shape: tuple[int, ...]
    spatial: bool


def probe_layers(policy: nn.Module, obs_shape: tuple[int, ...] | None = None) -> list[LayerInfo]:
    """List the layers worth probing in forward order, with their activation shapes.

    Shapes come from one dry forward pass on a zero observation (hooks on every listed
    module); a layer is spatial when its output keeps the board's ``H x W`` map.
    """
    if obs_shape is None:
        obs_shape = tuple(policy.observation_space.shape)
    wanted = ["features_extractor.stem"]
    wanted += [f"features_extractor.blocks.{i}" for i in range(len(policy.features_extractor.blocks))]
    for head in ("policy_net", "value_net"):
        wanted += [f"mlp_extractor.{head}.conv", f"mlp_extractor.{head}.fc"]
    wanted += ["action_net", "value_net"]
    modules = dict(policy.named_modules())
    missing = [n for n in wanted if n not in modules]
    if missing:
        raise ValueError(f"{type(policy).__name__} lacks the modules {missing}; is it a BoardPolicy?")
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n in wanted]
    try:
        with torch.no_grad():
            policy_forward(policy, torch.zeros((1, *obs_shape), dtype=torch.float32, device=policy.device))
    finally:
        for h in hooks:
            h.remove()
    board = tuple(obs_shape[1:])
    return [LayerInfo(n, shapes[n], len(shapes[n]) == 3 and shapes[n][1:] == board) for n in wanted]

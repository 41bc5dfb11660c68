"""Config sections of LoRA training."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mathlora.run_dir.same_result import NOT_RESULT


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[Annotated[str, Field(min_length=1)]] = Field(
        ["q_proj", "v_proj"], min_length=1,
        description="module names LoRA adapts (at least one), or all-linear: every linear layer but the LM head")
    init_from: str | None = Field(
        None, description="a peft adapter folder (a run's train/adapter, a checkpoint) whose LoRA weights the "
                          "training starts from instead of fresh ones: continued training. Its rank, alpha and "
                          "adapted layers must be this section's; its weights' hash enters the run's fingerprint")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _all_linear(cls, value):  # peft's own "all-linear", kept as a one-name list (every reader takes a list)
        if value == "all-linear":
            return ["all-linear"]
        if isinstance(value, (list, tuple)) and "all-linear" in value and len(value) > 1:
            raise ValueError("all-linear stands alone (it already names every linear layer)")
        return value


def report_to_list(value):
    """A ``report_to`` field's value: one name or a comma-separated list (``train.report_to=wandb,mlflow``),
    ``none`` for none; each once."""
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",")]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        value = list(dict.fromkeys(value))
    return value


class TrainConfig(BaseModel):
    # fields marked NOT_RESULT change float rounding at most, never which tokens are trained on or how: a resume
    # may change them, and they never make a finished run stale (mathlora.run_dir.same_result)
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    global_batch_size: int = Field(32, ge=1, description="records per optimizer step, over all processes")
    micro_batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        8, description="rows per forward pass (packed rows, or records); auto = the memory plan's",
        json_schema_extra=NOT_RESULT)
    lr: float = Field(1e-5, gt=0)
    lr_end: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(
        (0.9, 0.95), description="AdamW betas, each in [0, 1)")
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    gradient_checkpointing: bool | Literal["auto", "selective"] = Field(
        True, description="activation recompute: true = every layer, selective = norms and SwiGLU activation "
                          "only, auto = the cheapest that fits train.memory_fraction of the GPU (none on CPU)",
        json_schema_extra=NOT_RESULT)
    memory_fraction: float = Field(0.8, gt=0, le=1, description="share of GPU memory the auto plan may use",
                                   json_schema_extra=NOT_RESULT)
    liger: bool | Literal["auto"] = Field("auto", description="Liger Kernel (RMSNorm, SwiGLU, RoPE, fused "
                                                              "linear cross-entropy) when installed and on CUDA",
                                  json_schema_extra=NOT_RESULT)
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = Field(
        "none", description="torch.compile each decoder layer; reduce-overhead adds CUDA graphs (fixed shapes)",
        json_schema_extra=NOT_RESULT)
    attn_implementation: str | None = Field(None, description="transformers attention: sdpa, eager, "
                                                              "flash_attention_2, flex_attention (none = on a "
                                                              "CPU mathlora_rows with packing, else eager in bf16; "
                                                              "the model's default elsewhere)",
                                                json_schema_extra=NOT_RESULT)
    packing: bool = True
    pack_length: int | None = Field(None, ge=8, description="tokens per packed row; none = the tokens' seq_length "
                                                            "(tokens/stats.json)")
    save_steps: int | list[int] | None = Field(None, description="interval, or list of steps; last step always",
                                                    json_schema_extra=NOT_RESULT)
    merge_checkpoints: bool = Field(False, json_schema_extra=NOT_RESULT)
    distributed: Literal["ddp", "fsdp"] = Field("ddp", description="strategy under torchrun (several processes)",
                                                 json_schema_extra=NOT_RESULT)
    log_every: int = Field(1, ge=1, description="write metrics every N steps",
                          json_schema_extra=NOT_RESULT)
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        ["tensorboard"], description="trackers of the training's scalars and the run's scores (mathlora.modeling.tracking): "
                                     "tensorboard, wandb, mlflow, each used when installed; [] or none: metrics.jsonl "
                                     "only", json_schema_extra=NOT_RESULT)

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value):
        return report_to_list(value)

"""Config section of the GRPO stage (``grpo:``): reinforcement learning on verifiable rewards after SFT.

Off unless ``grpo.enabled``. Fields marked ``NOT_RESULT`` (``mathlora.run_dir.same_result``) never make a finished GRPO
run stale or refuse a resume: whether the stage runs, how often it logs and saves, where metrics go.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mathlora.run_dir.same_result import NOT_RESULT
from mathlora.train.config import report_to_list

# TRL's GRPOTrainer loss aggregations (trl>=1.16): grpo (per-sequence mean), dr_grpo (a constant normaliser,
# "Dr. GRPO"), dapo (TRL's default: token-level over the batch), bnpo (token-level over the local batch),
# cispo and sapo (clipped / soft-gated importance weights)
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo")


class GrpoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="run the grpo stage after train (TRL's GRPOTrainer; pip install "
                                             "mathlora[grpo])", json_schema_extra=NOT_RESULT)
    steps: int = Field(50, ge=1, description="optimizer steps (each: prompts_per_step problems x num_generations "
                                             "sampled completions, graded, one policy update)")
    prompts_per_step: int = Field(2, ge=1, description="the batch: distinct training problems per step")
    num_generations: int = Field(4, ge=2, description="completions sampled per problem (the group whose rewards "
                                                      "are compared); at least 2")
    max_completion_length: int = Field(128, ge=1, description="tokens per sampled completion at most")
    temperature: float = Field(1.0, gt=0, le=10, description="sampling temperature of the rollouts")
    lr: float = Field(1e-5, gt=0, description="learning rate (constant) of the LoRA weights")
    beta: float = Field(0.04, ge=0, description="KL penalty to the SFT adapter (its frozen copy is the reference "
                                                "model); 0 = no reference model, no KL")
    loss_type: Literal[LOSS_TYPES] = Field("dapo", description="TRL's loss aggregation: " + ", ".join(LOSS_TYPES))
    max_grad_norm: float = Field(1.0, gt=0)
    correct_reward: float = Field(1.0, ge=0, description="weight of the grader's reward: 1 when the final answer "
                                                        "matches the gold within eval.atol/eval.rtol, else 0")
    format_reward: float = Field(0.1, ge=0, description="weight of the format reward: 1 when the grader can read a "
                                                        "final answer at all (right or wrong), else 0; 0 = off")
    reward_timeout: float = Field(2.0, gt=0, le=60, description="seconds the grader may spend on one completion; "
                                                                "beyond: reward 0, counted")
    max_prompts: int | None = Field(None, ge=1, description="use the first N training problems (none = all)")
    generation: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="who samples the rollouts: transformers' generate, or vLLM (colocated; CUDA with vllm "
                            "installed); auto = vLLM where it can run, else transformers")
    save_steps: int = Field(10, ge=1, description="checkpoint every N steps (and the last)",
                            json_schema_extra=NOT_RESULT)
    log_every: int = Field(1, ge=1, description="metrics row every N steps", json_schema_extra=NOT_RESULT)
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        ["tensorboard"], description="trackers of the GRPO scalars (as train.report_to); [] or none: metrics.jsonl "
                                     "only", json_schema_extra=NOT_RESULT)

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value):
        return report_to_list(value)

    @model_validator(mode="after")
    def _some_reward(self):
        if self.correct_reward == 0 and self.format_reward == 0:
            raise ValueError("correct_reward and format_reward are both 0: GRPO needs a reward")
        return self

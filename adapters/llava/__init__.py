"""LLaVA-style visual instruction tuning (`sc-eval llava`): frozen encoder -> projector -> any
local causal LM (composition, not subclassing), two-stage training with PEFT, batch-invariant
greedy generation, and the adapter the task runner calls.

Modules: projector (specs + LLaVA export), templates (conversations, turn-by-turn labels),
model (composition, LLM loading, LoRA), data (LLaVA json), train (resumable stage loop),
saving (adapter directory), generate (greedy decoding + runner adapter), command (CLI).
"""

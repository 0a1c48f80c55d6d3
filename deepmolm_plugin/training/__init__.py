"""The training launcher's parts (`python -m deepmolm_plugin.train`, whose main() runs them in
order): the command line (options), checks before the host starts (inputs, deepspeed_config,
adapter, arguments), what an earlier run left in --output_dir (checkpoints,
checkpoint_problems, saved_settings, run_record, finished, resume), the processes training
runs on (distributed) and a run stopped from outside (interrupts).

Dependencies run one way: these modules never import deepmolm_plugin.train.
"""

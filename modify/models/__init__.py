"""The app's models: provider API keys, tasks and their event log, the provider's shared limits."""

from modify.models.api_key import ApiKey
from modify.models.provider_slot import ProviderSlot
from modify.models.task import LifecycleError, ModifyTask, _new_callback_token, _result_path, _source_path
from modify.models.task_event import TaskEvent

__all__ = ["ApiKey", "LifecycleError", "ModifyTask", "ProviderSlot", "TaskEvent", "_new_callback_token", "_result_path", "_source_path"]

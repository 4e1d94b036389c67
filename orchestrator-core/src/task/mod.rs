//! The task model: types, statuses, stored task rows and their executions.

mod execution;
mod kind;
mod record;
mod status;

pub use execution::{ExecutionStatus, TaskExecution};
pub use kind::{InvalidTaskType, TaskType};
pub use record::{NewTask, PARENT_TASK_CONFIG_KEY, Task, TaskDetail, TaskSpec};
pub use status::{IllegalTransition, TaskStatus, Transition, UnknownStatus};

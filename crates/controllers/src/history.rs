//! ControllerRevisions: the template history of StatefulSets and DaemonSets (not written yet).

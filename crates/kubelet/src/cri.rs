//! The CRI v1 client: the runtime and image services of a container runtime (containerd)
//! reached over its unix socket.

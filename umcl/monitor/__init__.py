"""Production monitoring: what the service saw (`store`), what the model was judged on (`reference`), and whether the two still agree (`drift`)."""

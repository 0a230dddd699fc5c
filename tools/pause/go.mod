// The test cluster's pod sandbox ("pause") binary, built into a local image because no
// registry (registry.k8s.io/pause) is reachable here. Our own few lines, no dependency.
module kube-node-ping/tools/pause

go 1.26.0

// kubelet-events writes the Events a kubelet writes when a Pod's image pull fails, with the
// kubelet's own code, into a real apiserver: there is no kubelet in syncd's test harness, and
// syncd's pull-failure watch must read these Events as they really are. Built by
// scripts/kubelet-events.sh against k8s.io/kubernetes (1.34.4 by default).
//
// stdin: {"kubeconfig": "/path", "namespace": "team-a", "pod": "web", "node": "node-1",
//
//	"steps": [{"container": "app", "runtime_error": "...", "times": 2},   // a failed pull
//	          {"missing_secrets": ["regcred"], "times": 1}]}               // unreadable pull Secrets
//
// A pull step runs the kubelet's image manager (pkg/kubelet/images/image_manager.go:
// imageManager.EnsureImageExists, then pullImage) for the container's image with the Pod's
// imagePullSecrets read from the apiserver, over a container runtime that fails every pull with
// `runtime_error` (the message containerd or CRI-O would return). The manager itself writes the
// Warning Event, reason "Failed", message `Failed to pull image "<image>": <runtime_error>`.
//
// A missing_secrets step writes the Event of pkg/kubelet/kubelet_pods.go:
// Kubelet.getPullSecretsForPod, an unexported method of the whole Kubelet, so its one Eventf
// call is repeated here with the same reason and format string.
//
// Events go through the kubelet's recorder (cmd/kubelet/app/server.go: makeEventRecorder:
// client-go's broadcaster, source component "kubelet", host = node), so repeats are patched onto
// one Event (count), and similar ones are combined, exactly as on a node. stdout: the number of
// Events the sink wrote, once all were written.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	v1core "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/credentialprovider"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	"k8s.io/kubernetes/pkg/kubelet/images"
	"k8s.io/kubernetes/pkg/kubelet/server"
)

type step struct {
	Container      string   `json:"container,omitempty"`
	RuntimeError   string   `json:"runtime_error,omitempty"`
	MissingSecrets []string `json:"missing_secrets,omitempty"`
	Times          int      `json:"times"`
}

type input struct {
	Kubeconfig string `json:"kubeconfig"`
	Namespace  string `json:"namespace"`
	Pod        string `json:"pod"`
	Node       string `json:"node"`
	Steps      []step `json:"steps"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kubelet-events: "+format+"\n", args...)
	os.Exit(2)
}

// failingRuntime is the container runtime's image service: nothing is present, every pull fails.
type failingRuntime struct{ err error }

func (r failingRuntime) PullImage(context.Context, kubecontainer.ImageSpec, []credentialprovider.TrackedAuthConfig, *runtimeapi.PodSandboxConfig) (string, *credentialprovider.TrackedAuthConfig, error) {
	return "", nil, r.err
}
func (failingRuntime) GetImageRef(context.Context, kubecontainer.ImageSpec) (string, error) {
	return "", nil
}
func (failingRuntime) ListImages(context.Context) ([]kubecontainer.Image, error)  { return nil, nil }
func (failingRuntime) RemoveImage(context.Context, kubecontainer.ImageSpec) error { return nil }
func (failingRuntime) ImageStats(context.Context) (*kubecontainer.ImageStats, error) {
	return &kubecontainer.ImageStats{}, nil
}
func (failingRuntime) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}
func (failingRuntime) GetImageSize(context.Context, kubecontainer.ImageSpec) (uint64, error) {
	return 0, nil
}

// noPullRecords stands in for the kubelet's pull-record store, which only matters for images
// already on the node; none are here.
type noPullRecords struct{}

func (noPullRecords) RecordPullIntent(string) error                                         { return nil }
func (noPullRecords) RecordImagePulled(string, string, *kubeletconfig.ImagePullCredentials) {}
func (noPullRecords) RecordImagePullFailed(string)                                          {}
func (noPullRecords) PruneUnknownRecords([]string, time.Time)                               {}
func (noPullRecords) MustAttemptImagePull(string, string, []kubeletconfig.ImagePullSecret, *kubeletconfig.ImagePullServiceAccount) bool {
	return true
}

// noPullTimes stands in for the kubelet's pod startup latency tracker (a metric only).
type noPullTimes struct{}

func (noPullTimes) RecordImageStartedPulling(types.UID)  {}
func (noPullTimes) RecordImageFinishedPulling(types.UID) {}

// countingSink is the kubelet's sink, counting the writes that reached the apiserver so the
// program can exit once every Event is stored.
type countingSink struct {
	record.EventSink
	mu      sync.Mutex
	written int
}

func (s *countingSink) add(event *v1.Event, err error) (*v1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.written++
	}
	return event, err
}
func (s *countingSink) Create(e *v1.Event) (*v1.Event, error) { return s.add(s.EventSink.Create(e)) }
func (s *countingSink) Update(e *v1.Event) (*v1.Event, error) { return s.add(s.EventSink.Update(e)) }
func (s *countingSink) Patch(e *v1.Event, p []byte) (*v1.Event, error) {
	return s.add(s.EventSink.Patch(e, p))
}
func (s *countingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

func pullSecrets(ctx context.Context, clients kubernetes.Interface, pod *v1.Pod) []v1.Secret {
	secrets := []v1.Secret{}
	for _, ref := range pod.Spec.ImagePullSecrets {
		secret, err := clients.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			secrets = append(secrets, *secret)
		}
	}
	return secrets
}

func container(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	fail("pod %s has no container %q", pod.Name, name)
	return nil
}

func pull(ctx context.Context, recorder record.EventRecorder, clients kubernetes.Interface, pod *v1.Pod, s step) {
	c := container(pod, s.Container)
	ref, err := kubecontainer.GenerateContainerRef(pod, c)
	if err != nil {
		fail("container reference: %v", err)
	}
	// A back-off shorter than the pause between steps: every step pulls (and fails) again, as
	// the kubelet does once each back-off has passed.
	backOff := flowcontrol.NewBackOff(time.Millisecond, time.Millisecond)
	manager := images.NewImageManager(recorder, &credentialprovider.BasicDockerKeyring{}, failingRuntime{errors.New(s.RuntimeError)},
		noPullRecords{}, backOff, false, nil, 0, 0, noPullTimes{})
	sandbox := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID)}}
	for i := 0; i < s.Times; i++ {
		_, _, _ = manager.EnsureImageExists(ctx, ref, pod, c.Image, pullSecrets(ctx, clients, pod), sandbox, "", v1.PullAlways)
		time.Sleep(5 * time.Millisecond)
	}
}

func main() {
	var in input
	decoder := json.NewDecoder(os.Stdin)
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&in); err != nil {
		fail("reading the request on stdin: %v", err)
	}
	config, err := clientcmd.BuildConfigFromFlags("", in.Kubeconfig)
	if err != nil {
		fail("kubeconfig: %v", err)
	}
	clients := kubernetes.NewForConfigOrDie(config)
	ctx := context.Background()
	pod, err := clients.CoreV1().Pods(in.Namespace).Get(ctx, in.Pod, metav1.GetOptions{})
	if err != nil {
		fail("reading pod %s/%s: %v", in.Namespace, in.Pod, err)
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	recorder := broadcaster.NewRecorder(legacyscheme.Scheme, v1.EventSource{Component: server.ComponentKubelet, Host: in.Node})
	sink := &countingSink{EventSink: &v1core.EventSinkImpl{Interface: clients.CoreV1().Events("")}}
	broadcaster.StartRecordingToSink(sink)

	expected := 0
	for _, s := range in.Steps {
		if s.Container != "" {
			expected += 2 * s.Times // "Pulling", then "Failed"
			pull(ctx, recorder, clients, pod, s)
			continue
		}
		expected += s.Times
		for i := 0; i < s.Times; i++ {
			recorder.Eventf(pod, v1.EventTypeWarning, "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(s.MissingSecrets, ", "))
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for sink.count() < expected && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	broadcaster.Shutdown()
	if sink.count() < expected {
		fail("%d of %d events written", sink.count(), expected)
	}
	fmt.Println(sink.count())
}

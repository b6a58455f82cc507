// A hollow kubelet (k8s.io/kubernetes/pkg/kubemark, as cmd/kubemark/app/hollow_node.go runs it)
// whose image pulls are real. The kubelet itself is the real one: it registers the Node, syncs
// Pods, looks up pull Secrets, retries and backs off, and writes its own Pod status and Events.
// Containers stay fake (the CRI runtime service from k8s.io/cri-client/pkg/fake), because what
// the tests ask of a node is whether a pull Secret really logs in, not whether a process starts.
// The CRI image service is ours: PullImage logs in to the registry with exactly the AuthConfig
// the kubelet passes and fetches the image's manifest, so a wrong login fails the pull with the
// registry's own answer and the kubelet reports ErrImagePull / ImagePullBackOff.
//
// Usage: hollow-node --kubeconfig=FILE --name=NODE [--insecure-registry=HOST:PORT]... [--v=N]
// The kubelet's root dir (with the fake runtime's socket) goes under $TMPDIR and is removed on
// SIGTERM / SIGINT.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"go.opentelemetry.io/otel/trace/noop"
	clientset "k8s.io/client-go/kubernetes"
	v1core "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	fakeremote "k8s.io/cri-client/pkg/fake"
	"k8s.io/klog/v2"
	cadvisortest "k8s.io/kubernetes/pkg/kubelet/cadvisor/testing"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	"k8s.io/kubernetes/pkg/kubemark"
)

type hostList map[string]bool

func (h hostList) String() string { return fmt.Sprint(map[string]bool(h)) }
func (h hostList) Set(v string) error {
	for _, host := range strings.Split(v, ",") {
		if host = strings.TrimSpace(host); host != "" {
			h[host] = true
		}
	}
	return nil
}

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster to join")
	name := flag.String("name", "hollow-1", "the Node's name")
	insecure := hostList{}
	flag.Var(insecure, "insecure-registry", "HOST:PORT reached over plain HTTP (repeatable, or comma-separated); others over HTTPS")
	flag.Parse()
	if *kubeconfig == "" {
		klog.Exit("--kubeconfig is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *kubeconfig, *name, insecure); err != nil {
		klog.Exit(err)
	}
}

func run(ctx context.Context, kubeconfig, name string, insecure hostList) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	config.UserAgent = "hollow-kubelet"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := clientset.NewForConfig(config)
	if err != nil {
		return err
	}
	// Port 0: two nodes (two test workers) on one machine must not fight over 10250.
	flags, kc := kubemark.GetHollowKubeletConfig(&kubemark.HollowKubeletOptions{NodeName: name, MaxPods: 110})
	// kubemark makes its root dir in /tmp whatever $TMPDIR says: move it under $TMPDIR, so that a
	// killed node leaves its files in the test's own folder.
	os.RemoveAll(flags.RootDirectory)
	root, err := os.MkdirTemp("", "hollow-kubelet.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	flags.RootDirectory, kc.StaticPodPath, kc.PodLogsDir = root, filepath.Join(root, "static-pods"), filepath.Join(root, "pod-logs")
	for _, dir := range []string{kc.StaticPodPath, kc.PodLogsDir} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
	}
	kc.Address = "127.0.0.1" // kubemark binds 0.0.0.0; a test node has no business off loopback

	// As kubemark: heartbeats unthrottled and bounded by the lease, or a busy test apiserver
	// would make the node flap NotReady.
	heartbeatConfig := *config
	heartbeatConfig.Timeout = min(kc.NodeStatusUpdateFrequency.Duration, time.Duration(kc.NodeLeaseDurationSeconds)*time.Second)
	heartbeatConfig.QPS = -1
	heartbeatClient, err := clientset.NewForConfig(&heartbeatConfig)
	if err != nil {
		return err
	}

	endpoint := "unix://" + filepath.Join(root, "cri.sock")
	fakeRuntime := fakeremote.NewFakeRemoteRuntime()
	if err := fakeRuntime.Start(endpoint); err != nil {
		return fmt.Errorf("fake runtime on %s: %w", endpoint, err)
	}
	defer fakeRuntime.Stop()
	logger := klog.Background()
	runtimeService, err := remote.NewRemoteRuntimeService(endpoint, 15*time.Second, noop.NewTracerProvider(), &logger)
	if err != nil {
		return err
	}

	hollow := kubemark.NewHollowKubelet(flags, kc, client, heartbeatClient,
		&cadvisortest.Fake{NodeName: name}, newRegistryImages(insecure), runtimeService, cm.NewStubContainerManager())
	// kubemark's probe manager marks every container ready, even one waiting on a refused pull
	// (and so Pods Ready, Deployments available); the kubelet's own manager says ready when
	// running. HTTP and TCP probes cannot pass: fake containers serve nothing.
	hollow.KubeletDeps.ProbeManager = nil
	// kubemark hands the kubelet a FakeRecorder, which drops every Event; the tests assert on the
	// kubelet's own Events, so let RunKubelet build its real recorder. A real recorder makes the
	// kubelet's OOM watcher open /dev/kmsg (pkg/kubelet/oom), hence the check.
	if kmsg, err := os.Open("/dev/kmsg"); err == nil {
		kmsg.Close()
		eventConfig := *config
		eventConfig.QPS, eventConfig.Burst = float32(kc.EventRecordQPS), int(kc.EventBurst)
		if hollow.KubeletDeps.EventClient, err = v1core.NewForConfig(&eventConfig); err != nil {
			return err
		}
		hollow.KubeletDeps.Recorder = nil
	} else {
		klog.Warningf("no kubelet Events will be written: %v (the kubelet's OOM watcher needs /dev/kmsg)", err)
	}
	go hollow.Run(ctx)
	<-ctx.Done()
	klog.Info("stopping")
	return nil
}

// registryImages is a CRI image service whose pulls go to the registry. What was pulled is kept
// in memory so that ImageStatus and ListImages agree with it, as a runtime's image store would.
type registryImages struct {
	http     *http.Client
	insecure hostList
	mu       sync.Mutex
	images   map[string]*runtimeapi.Image // by ID
}

func newRegistryImages(insecure hostList) *registryImages {
	return &registryImages{
		http:     &http.Client{Timeout: time.Minute},
		insecure: insecure,
		images:   map[string]*runtimeapi.Image{},
	}
}

var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

func (s *registryImages) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	named, err := reference.ParseNormalizedNamed(spec.Image)
	if err != nil {
		return "", err
	}
	named = reference.TagNameOnly(named)
	host, repo, ref := reference.Domain(named), reference.Path(named), ""
	if digested, ok := named.(reference.Digested); ok {
		ref = digested.Digest().String()
	} else {
		ref = named.(reference.Tagged).Tag()
	}
	endpoint := "https://" + host
	if host == "docker.io" {
		endpoint = "https://registry-1.docker.io"
	} else if s.insecure[host] {
		endpoint = "http://" + host
	}
	authorization, err := s.authorize(ctx, endpoint, repo, auth)
	if err != nil {
		return "", fmt.Errorf("pulling %s from %s: %w", named, endpoint, err)
	}
	body, digest, err := s.get(ctx, endpoint+"/v2/"+repo+"/manifests/"+ref, authorization, manifestTypes)
	if err != nil {
		return "", fmt.Errorf("pulling %s from %s: %w", named, endpoint, err)
	}
	if digest == "" {
		digest = fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	}
	s.store(named, digest, manifestSize(body))
	klog.InfoS("Pulled image", "image", named.String(), "digest", digest, "auth", auth != nil)
	return digest, nil
}

// authorize answers the registry's challenge the way a container runtime does (the distribution
// spec's /v2/ ping, then Basic or a Bearer token from the realm) and returns the Authorization
// header for the manifest request ("" for anonymous).
func (s *registryImages) authorize(ctx context.Context, endpoint, repo string, auth *runtimeapi.AuthConfig) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v2/", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return "", nil
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", fmt.Errorf("GET /v2/: %s", resp.Status)
	}
	username, password := credentials(auth)
	if auth != nil && auth.RegistryToken != "" {
		return "Bearer " + auth.RegistryToken, nil
	}
	scheme, params := challenge(resp.Header.Values("WWW-Authenticate"))
	switch scheme {
	case "basic":
		if username == "" && password == "" {
			return "", nil // the manifest request then gets the registry's own refusal
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password)), nil
	case "bearer":
		token, err := s.token(ctx, params, "repository:"+repo+":pull", username, password, auth.GetIdentityToken())
		if err != nil {
			return "", err
		}
		return "Bearer " + token, nil
	}
	return "", fmt.Errorf("GET /v2/: %s with no Basic or Bearer challenge", resp.Status)
}

// token gets a Bearer token from the realm: an identity token is an OAuth2 refresh token (POST),
// otherwise the login goes as Basic on a GET (anonymous when there is none).
func (s *registryImages) token(ctx context.Context, params map[string]string, scope, username, password, identityToken string) (string, error) {
	realm := params["realm"]
	if realm == "" {
		return "", errors.New("Bearer challenge without a realm")
	}
	var req *http.Request
	var err error
	if identityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {identityToken},
			"service": {params["service"]}, "scope": {scope}, "client_id": {"syncd-hollow-node"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		query := url.Values{"scope": {scope}}
		if params["service"] != "" {
			query.Set("service", params["service"])
		}
		sep := "?"
		if strings.Contains(realm, "?") {
			sep = "&"
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm+sep+query.Encode(), nil)
		if err == nil && (username != "" || password != "") {
			req.SetBasicAuth(username, password)
		}
	}
	if err != nil {
		return "", err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("fetching a token from %s: %s%s", realm, resp.Status, registryErrors(body))
	}
	var answer struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return "", fmt.Errorf("token from %s: %w", realm, err)
	}
	if answer.Token != "" {
		return answer.Token, nil
	}
	return answer.AccessToken, nil
}

func (s *registryImages) get(ctx context.Context, target, authorization, accept string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", accept)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode/100 != 2 {
		return nil, "", fmt.Errorf("GET %s: %s%s", req.URL.Path, resp.Status, registryErrors(body))
	}
	return body, resp.Header.Get("Docker-Content-Digest"), nil
}

func credentials(auth *runtimeapi.AuthConfig) (string, string) {
	if auth == nil {
		return "", ""
	}
	if auth.Username == "" && auth.Password == "" && auth.Auth != "" {
		if decoded, err := base64.StdEncoding.DecodeString(auth.Auth); err == nil {
			user, pass, _ := strings.Cut(string(decoded), ":")
			return user, pass
		}
	}
	return auth.Username, auth.Password
}

var challengeParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// challenge picks the first Basic or Bearer challenge of WWW-Authenticate, with its parameters.
func challenge(headers []string) (string, map[string]string) {
	for _, header := range headers {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
		scheme = strings.ToLower(scheme)
		if scheme != "basic" && scheme != "bearer" {
			continue
		}
		params := map[string]string{}
		for _, m := range challengeParam.FindAllStringSubmatch(rest, -1) {
			params[strings.ToLower(m[1])] = m[2]
		}
		return scheme, params
	}
	return "", nil
}

// registryErrors renders a distribution error body as its errcode prints itself
// ("unauthorized: authentication required"): what runtimes show, and what syncd matches on.
func registryErrors(body []byte) string {
	var answer struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(body, &answer) != nil || len(answer.Errors) == 0 {
		return ""
	}
	parts := make([]string, 0, len(answer.Errors))
	for _, e := range answer.Errors {
		parts = append(parts, strings.ToLower(e.Code)+": "+e.Message)
	}
	return ": " + strings.Join(parts, "; ")
}

func manifestSize(body []byte) uint64 {
	var manifest struct {
		Config struct{ Size uint64 }   `json:"config"`
		Layers []struct{ Size uint64 } `json:"layers"`
	}
	if json.Unmarshal(body, &manifest) != nil {
		return 0
	}
	size := manifest.Config.Size
	for _, layer := range manifest.Layers {
		size += layer.Size
	}
	return size
}

func (s *registryImages) store(named reference.Named, digest string, size uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	image, ok := s.images[digest]
	if !ok {
		image = &runtimeapi.Image{Id: digest, Size: size, Spec: &runtimeapi.ImageSpec{Image: digest}}
		image.RepoDigests = []string{named.Name() + "@" + digest}
		s.images[digest] = image
	}
	if tagged, ok := named.(reference.Tagged); ok {
		tag := named.Name() + ":" + tagged.Tag()
		for _, other := range s.images { // a tag names one image: the newest pull moves it
			other.RepoTags = without(other.RepoTags, tag)
		}
		image.RepoTags = append(image.RepoTags, tag)
	}
}

func without(list []string, item string) []string {
	out := list[:0]
	for _, v := range list {
		if v != item {
			out = append(out, v)
		}
	}
	return out
}

// lookup finds an image by ID, by NAME:TAG or by NAME@DIGEST (names normalized as the kubelet's).
func (s *registryImages) lookup(ref string) *runtimeapi.Image {
	if image, ok := s.images[ref]; ok {
		return image
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil
	}
	key := reference.TagNameOnly(named).String()
	for _, image := range s.images {
		for _, known := range append(append([]string{}, image.RepoTags...), image.RepoDigests...) {
			if known == key {
				return image
			}
		}
	}
	return nil
}

func (s *registryImages) ImageStatus(_ context.Context, spec *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runtimeapi.ImageStatusResponse{Image: s.lookup(spec.Image)}, nil
}

func (s *registryImages) ListImages(_ context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if filter.GetImage().GetImage() != "" {
		if image := s.lookup(filter.Image.Image); image != nil {
			return []*runtimeapi.Image{image}, nil
		}
		return nil, nil
	}
	images := make([]*runtimeapi.Image, 0, len(s.images))
	for _, image := range s.images {
		images = append(images, image)
	}
	return images, nil
}

func (s *registryImages) RemoveImage(_ context.Context, spec *runtimeapi.ImageSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if image := s.lookup(spec.Image); image != nil {
		delete(s.images, image.Id)
	}
	return nil
}

// ImageFsInfo reports no filesystems, as kubemark's fake image service does: nothing is on disk.
func (s *registryImages) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}

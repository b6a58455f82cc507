// kubelet-keyring answers "which logins would the kubelet offer for this image, given these
// imagePullSecrets?" with the kubelet's own code, so that syncd's Python resolver can be compared
// against the real thing. Built by scripts/kubelet-keyring.sh against k8s.io/kubernetes (1.34.4 by
// default); every behaviour below is the kubelet's, this file only feeds it and prints it.
//
// stdin:  {"secrets": [{"name": "pull", "dockerconfigjson": "<text>"}, ...],   // the Pod's order
//
//	"images": ["nginx", "quay.io/team/app:1", ...],
//	"normalize": true}                                               // optional, default true
//
// A secret may give its .dockerconfigjson as "dockerconfigjson_base64" instead (exact bytes), and
// also "type" (default kubernetes.io/dockerconfigjson) and "dockercfg" (the legacy .dockercfg key),
// to show what the kubelet does with other Secret shapes.
//
// stdout: [{"image": "nginx", "lookup": "docker.io/library/nginx", "found": true,
//
//	"logins": [{"secret": "pull", "server": "docker.io", "username": "u", "password": "p"}]}, ...]
//
// "logins" is in the order the kubelet hands them to the container runtime, which tries each in
// turn until one pulls (pkg/kubelet/kuberuntime/kuberuntime_image.go: PullImage). "error" is set
// instead when the kubelet would fail the pull before asking the runtime: an image name it cannot
// parse, or a pull Secret it cannot decode (then every image of the Pod fails).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/util/parsers"
)

type inputSecret struct {
	Name             string  `json:"name"`
	Type             string  `json:"type,omitempty"`
	DockerConfigJSON *string `json:"dockerconfigjson,omitempty"`
	DockerConfigB64  []byte  `json:"dockerconfigjson_base64,omitempty"`
	DockerCfg        *string `json:"dockercfg,omitempty"`
}

type input struct {
	Secrets   []inputSecret `json:"secrets"`
	Images    []string      `json:"images"`
	Normalize *bool         `json:"normalize,omitempty"`
}

type login struct {
	Secret   string `json:"secret,omitempty"`
	Server   string `json:"server"`
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth,omitempty"`
	Email    string `json:"email,omitempty"`
}

type answer struct {
	Image  string  `json:"image"`
	Lookup string  `json:"lookup,omitempty"`
	Found  bool    `json:"found"`
	Logins []login `json:"logins"`
	Error  string  `json:"error,omitempty"`
}

// defaultRegistryHost is pkg/credentialprovider/keyring.go's unexported constant of that name:
// the one key BasicDockerKeyring.Lookup falls back to for Docker Hub images.
const defaultRegistryHost = "index.docker.io"

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kubelet-keyring: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	// TrackedAuthConfig.Source (which Secret a login came from) is only filled in when this gate
	// is on (keyring.go: NewTrackedAuthConfig); it is alpha and off by default in 1.34. It changes
	// no lookup result: it only records the source, for the kubelet's pulled-image verification.
	if err := utilfeature.DefaultMutableFeatureGate.Set(string(features.KubeletEnsureSecretPulledImages) + "=true"); err != nil {
		fail("enabling %s: %v", features.KubeletEnsureSecretPulledImages, err)
	}

	var in input
	decoder := json.NewDecoder(os.Stdin)
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&in); err != nil {
		fail("reading the request on stdin: %v", err)
	}

	// The Secrets as the kubelet receives them from the API (pkg/kubelet/kubelet_pods.go:
	// getPullSecretsForPod keeps the Pod's imagePullSecrets order and drops missing ones).
	pullSecrets := make([]v1.Secret, 0, len(in.Secrets))
	for i, s := range in.Secrets {
		secret := v1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Type:       v1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{},
		}
		if s.Type != "" {
			secret.Type = v1.SecretType(s.Type)
		}
		if s.DockerConfigJSON != nil {
			secret.Data[v1.DockerConfigJsonKey] = []byte(*s.DockerConfigJSON)
		}
		if s.DockerConfigB64 != nil {
			secret.Data[v1.DockerConfigJsonKey] = s.DockerConfigB64
		}
		if s.DockerCfg != nil {
			secret.Data[v1.DockerConfigKey] = []byte(*s.DockerCfg)
		}
		pullSecrets = append(pullSecrets, secret)
	}

	// pkg/kubelet/images/image_manager.go: EnsureImageExists builds the keyring from the pull
	// Secrets over the node's own keyring (here an empty one: no node config.json, no credential
	// provider plugins), exactly this call. secrets.go: MakeDockerKeyring puts every usable Secret
	// into ONE BasicDockerKeyring (secretsToTrackedDockerConfigs) and returns
	// UnionDockerKeyring{fromSecrets, default}; a Secret whose JSON does not decode (including an
	// "auth" that is not base64(user:pass), config.go: DockerConfigEntry.UnmarshalJSON) is an error
	// for the whole set, so the kubelet fails the pull of every image in the Pod.
	keyring, keyringErr := secrets.MakeDockerKeyring(pullSecrets, &credentialprovider.BasicDockerKeyring{})

	normalize := in.Normalize == nil || *in.Normalize
	answers := make([]answer, 0, len(in.Images))
	for _, image := range in.Images {
		a := answer{Image: image, Logins: []login{}}
		if keyringErr != nil {
			a.Error = keyringErr.Error()
			answers = append(answers, a)
			continue
		}
		a.Lookup = image
		if normalize {
			// image_manager.go: EnsureImageExists looks up parsers.ParseImageName(image)'s repo,
			// the fully qualified name without tag or digest ("nginx:1" -> "docker.io/library/nginx").
			repo, _, _, err := parsers.ParseImageName(image)
			if err != nil {
				a.Lookup, a.Error = "", err.Error()
				answers = append(answers, a)
				continue
			}
			a.Lookup = repo
		}
		tracked, found := keyring.Lookup(a.Lookup)
		servers, err := matchedKeys(keyring, a.Lookup, len(tracked))
		if err != nil {
			fail("%s: %v", image, err)
		}
		a.Found = found
		for i, t := range tracked {
			l := login{
				Server:   servers[i],
				Username: t.Username,
				Password: t.Password,
				Auth:     t.Auth,
				Email:    t.Email,
			}
			if t.Source != nil && t.Source.Secret != nil {
				l.Secret = t.Source.Secret.Name
			}
			a.Logins = append(a.Logins, l)
		}
		answers = append(answers, a)
	}

	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(answers); err != nil {
		fail("writing the answer: %v", err)
	}
}

// matchedKeys names, for each login Lookup returned, the keyring key it was stored under. Lookup
// does not say, so this reads the keyring's own (unexported) index and creds with reflection and
// replays keyring.go: BasicDockerKeyring.Lookup's walk with the kubelet's exported matcher
// (URLsMatchStr): every index key that matches contributes its logins, in index order (reverse
// sorted, so "quay.io/team" before "quay.io"); only if none matched does the Docker Hub fallback
// return the logins stored under "index.docker.io". The replay must account for exactly as many
// logins as Lookup returned, or this fails rather than guess.
func matchedKeys(keyring credentialprovider.DockerKeyring, image string, returned int) ([]string, error) {
	servers := []string{}
	union, ok := keyring.(credentialprovider.UnionDockerKeyring)
	if !ok {
		// No usable pull Secret: MakeDockerKeyring returned the (empty) default keyring.
		if returned != 0 {
			return nil, fmt.Errorf("%d logins from the default keyring, which is empty", returned)
		}
		return servers, nil
	}
	basic, ok := union[0].(*credentialprovider.BasicDockerKeyring)
	if !ok {
		return nil, fmt.Errorf("unexpected keyring type %T", union[0])
	}
	fields := reflect.ValueOf(basic).Elem()
	index, creds := fields.FieldByName("index"), fields.FieldByName("creds")
	for i := 0; i < index.Len(); i++ {
		key := index.Index(i).String()
		if matched, _ := credentialprovider.URLsMatchStr(key, image); matched {
			for j := 0; j < creds.MapIndex(reflect.ValueOf(key)).Len(); j++ {
				servers = append(servers, key)
			}
		}
	}
	if len(servers) == 0 && returned > 0 {
		if hub := creds.MapIndex(reflect.ValueOf(defaultRegistryHost)); hub.IsValid() {
			for j := 0; j < hub.Len(); j++ {
				servers = append(servers, defaultRegistryHost)
			}
		}
	}
	if len(servers) != returned {
		return nil, fmt.Errorf("replayed %d logins for %q but Lookup returned %d", len(servers), image, returned)
	}
	return servers, nil
}

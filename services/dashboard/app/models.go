package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

// Models and deployments: the serving service's control plane (/apis/serving/v1/namespaces/{ns}/
// deployments) and its TF Serving REST data plane (/v1/models/{model}:predict), both called with the
// signed-in user's credential.

type deploymentsData struct {
	Deployments []servingv1.DeploymentView
	Problems    []string
}

func deploymentsPath(ns string) string {
	return "/apis/serving/v1/namespaces/" + url.PathEscape(ns) + "/deployments"
}

// listDeployments lists the deployments of every overview namespace (see [App.namespaces]).
func (a *App) listDeployments(r *http.Request, c *caller) ([]servingv1.DeploymentView, []string, error) {
	nss, err := a.namespaces(r, c)
	if err != nil {
		return nil, nil, err
	}
	var out []servingv1.DeploymentView
	var problems []string
	for _, ns := range nss {
		var dl servingv1.DeploymentList
		if err := c.getJSON(r.Context(), deploymentsPath(ns), &dl); err != nil {
			if !implicitDenied(ns, err) {
				problems = append(problems, ns+": "+err.Error())
			}
			continue
		}
		out = append(out, dl.Deployments...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, problems, nil
}

func (a *App) deployments(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Models", err)
		return
	}
	var d deploymentsData
	if d.Deployments, d.Problems, err = a.listDeployments(r, c); err != nil {
		a.fail(w, r, "Models", err)
		return
	}
	a.render(w, r, http.StatusOK, "deployments", view{Title: "Models and deployments", Nav: "models", Data: d})
}

// deploymentData is one deployment's page: its view, what the page may offer, and the try-it form.
type deploymentData struct {
	D servingv1.DeploymentView
	// Canary is the revision taking a share of the traffic beside the previous one (nil: none).
	Canary *servingv1.TrafficTarget
	// Previous is the revision a rollback returns to: the one still sharing the traffic with a canary,
	// else the previously rolled-out revision (nil: nothing to roll back to).
	Previous *servingv1.Revision
	// Editable is true for InferenceService documents (the flags form has no canary percent).
	Editable bool
	// PredictURL is the data plane path of the try-it form.
	PredictURL string
	Request    string
	Response   string
	Status     int
	Problems   []string
}

// defaultPredictRequest is the try-it form's initial body: TF Serving's row format.
const defaultPredictRequest = `{"instances": [[0.0, 0.0, 0.0, 0.0]]}`

func (a *App) loadDeployment(r *http.Request, c *caller) (deploymentData, error) {
	var d deploymentData
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := c.getJSON(r.Context(), deploymentsPath(ns)+"/"+url.PathEscape(name), &d.D); err != nil {
		return d, err
	}
	d.Editable = d.D.Spec.Form == servingv1.FormInferenceService
	d.PredictURL = "/v1/models/" + url.PathEscape(d.D.Spec.ModelName) + ":predict"
	d.Request = defaultPredictRequest
	pred := d.D.Status.Components.Predictor
	for i, t := range pred.Traffic {
		if t.Tag == "latest" && t.Percent < 100 && len(pred.Traffic) > 1 {
			d.Canary = &pred.Traffic[i]
		}
	}
	prevName := pred.PreviousRolledoutRevision
	if d.Canary != nil {
		prevName = pred.LatestRolledoutRevision
	}
	for i, rev := range d.D.Status.Revisions {
		if rev.Name == prevName && prevName != "" {
			d.Previous = &d.D.Status.Revisions[i]
		}
	}
	return d, nil
}

func (a *App) deployment(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Deployment", err)
		return
	}
	d, err := a.loadDeployment(r, c)
	if err != nil {
		a.fail(w, r, "Deployment "+r.PathValue("name"), err)
		return
	}
	a.render(w, r, http.StatusOK, "deployment", view{Title: "Deployment " + d.D.Namespace + "/" + d.D.Name, Nav: "models", Data: d})
}

// isvcDocument writes spec back as the KServe InferenceService (serving.kserve.io/v1beta1) it was
// applied as, with storageURI, canary (nil: none) and the version-policy annotation policy ("" keeps
// the spec's own) in place of the spec's.
func isvcDocument(spec servingv1.Deployment, storageURI string, canary *int, policy string) map[string]any {
	ann := map[string]string{}
	if policy == "" {
		switch p := spec.VersionPolicy; {
		case p.All:
			policy = "all"
		case len(p.Specific) > 0:
			var vs []string
			for _, v := range p.Specific {
				vs = append(vs, strconv.FormatInt(v, 10))
			}
			policy = "specific:" + strings.Join(vs, ",")
		case p.Latest > 0:
			policy = "latest:" + strconv.Itoa(p.Latest)
		}
	}
	if policy != "" {
		ann[servingv1.AnnotationVersionPolicy] = policy
	}
	if len(spec.VersionLabels) > 0 {
		var kv []string
		for k, v := range spec.VersionLabels {
			kv = append(kv, k+"="+strconv.FormatInt(v, 10))
		}
		slices.Sort(kv)
		ann[servingv1.AnnotationVersionLabels] = strings.Join(kv, ",")
	}
	model := map[string]any{"modelFormat": map[string]any{"name": spec.ModelFormat}, "storageUri": storageURI}
	if spec.ProtocolVersion != "" {
		model["protocolVersion"] = spec.ProtocolVersion
	}
	pred := map[string]any{"model": model}
	if spec.MinReplicas != nil {
		pred["minReplicas"] = *spec.MinReplicas
	}
	if spec.MaxReplicas != nil {
		pred["maxReplicas"] = *spec.MaxReplicas
	}
	if canary != nil {
		pred["canaryTrafficPercent"] = *canary
	}
	meta := map[string]any{"name": spec.Name, "namespace": spec.Namespace}
	if len(ann) > 0 {
		meta["annotations"] = ann
	}
	return map[string]any{"apiVersion": servingv1.APIVersionKServe, "kind": servingv1.KindKServe, "metadata": meta, "spec": map[string]any{"predictor": pred}}
}

// deploymentAction handles the page's buttons: promote (all traffic to the latest revision, the
// serving API's promote), canary (apply the InferenceService with a new storageUri and
// canaryTrafficPercent, per KServe), rollback (canaryTrafficPercent 0 while a canary shares the
// traffic, which sends it all back to the previous revision as KServe does; after a full rollout,
// re-apply the previous revision's storageUri pinned to its version with the
// serving.sluice.io/model-version-policy annotation "specific:<version>"), delete, and predict (the
// try-it form: the body as typed, POSTed to TF Serving's :predict, the answer shown as it came).
func (a *App) deploymentAction(w http.ResponseWriter, r *http.Request) {
	if !a.sameOrigin(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
	if err := r.ParseForm(); err != nil {
		a.render(w, r, http.StatusBadRequest, "error", view{Title: "Deployment", Error: "form: " + err.Error()})
		return
	}
	ns, name, action := r.PathValue("ns"), r.PathValue("name"), r.PathValue("action")
	switch action {
	case "promote", "canary", "rollback", "delete", "predict":
	default:
		a.render(w, r, http.StatusNotFound, "error", view{Title: "Deployment", Error: fmt.Sprintf("action: %q is not promote, canary, rollback, delete or predict", action)})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Deployment", err)
		return
	}
	d, err := a.loadDeployment(r, c)
	if err != nil {
		a.fail(w, r, "Deployment "+name, err)
		return
	}
	base := deploymentsPath(ns) + "/" + url.PathEscape(name)
	page := "/ui/models/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
	title := "Deployment " + ns + "/" + name
	refuse := func(msg string) {
		d.Problems = append(d.Problems, msg)
		a.render(w, r, http.StatusBadRequest, "deployment", view{Title: title, Nav: "models", Error: "Nothing was changed.", Data: d})
	}
	switch action {
	case "promote":
		err = c.sendJSON(r.Context(), http.MethodPost, base+"/promote", nil, nil)
	case "delete":
		err = c.sendJSON(r.Context(), http.MethodDelete, base, nil, nil)
		page = "/ui/models"
	case "canary":
		if !d.Editable {
			refuse("canary: a deployment written as tf-serving flags has no canary percent; apply it as an InferenceService")
			return
		}
		uri := strings.TrimSpace(r.PostForm.Get("storage_uri"))
		pct, perr := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("percent")))
		switch {
		case uri == "":
			refuse("storage_uri: required (the new model base path, e.g. s3://models/mnist-v2)")
			return
		case perr != nil || pct < 0 || pct > 100:
			refuse("percent: want a whole number from 0 to 100")
			return
		}
		err = c.sendJSON(r.Context(), http.MethodPost, deploymentsPath(ns), isvcDocument(d.D.Spec, uri, &pct, ""), nil)
	case "rollback":
		if !d.Editable {
			refuse("rollback: a deployment written as tf-serving flags is rolled back by applying its previous flags")
			return
		}
		switch {
		case d.Canary != nil:
			zero := 0
			err = c.sendJSON(r.Context(), http.MethodPost, deploymentsPath(ns), isvcDocument(d.D.Spec, d.D.Spec.StorageURI, &zero, ""), nil)
		case d.Previous != nil:
			err = c.sendJSON(r.Context(), http.MethodPost, deploymentsPath(ns),
				isvcDocument(d.D.Spec, d.Previous.StorageURI, nil, "specific:"+strconv.FormatInt(d.Previous.Version, 10)), nil)
		default:
			refuse("rollback: there is no previous revision to roll back to")
			return
		}
	case "predict":
		a.predict(w, r, c, &d, title)
		return
	}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == http.StatusBadRequest {
			refuse(ae.Msg)
			return
		}
		a.fail(w, r, title, err)
		return
	}
	http.Redirect(w, r, page, http.StatusSeeOther)
}

// predict sends the try-it form's body to the model's TF Serving :predict and shows the answer (status
// and body as the data plane wrote them, errors included).
func (a *App) predict(w http.ResponseWriter, r *http.Request, c *caller, d *deploymentData, title string) {
	d.Request = r.PostForm.Get("request")
	if !json.Valid([]byte(d.Request)) {
		d.Problems = append(d.Problems, `request: not JSON; write TF Serving's {"instances": [...]} or {"inputs": ...}`)
		a.render(w, r, http.StatusBadRequest, "deployment", view{Title: title, Nav: "models", Data: *d})
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, c.base+d.PredictURL, bytes.NewReader([]byte(d.Request)))
	if err != nil {
		a.fail(w, r, title, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		a.fail(w, r, title, err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	d.Status = resp.StatusCode
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") == nil {
		d.Response = pretty.String()
	} else {
		d.Response = string(b)
	}
	a.render(w, r, http.StatusOK, "deployment", view{Title: title, Nav: "models", Data: *d})
}

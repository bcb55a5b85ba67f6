package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// checkEncode fails unless encodeTask gives exactly what json.Marshal gives (or fails as it does).
func checkEncode(t *testing.T, task *agentv1.Task) {
	t.Helper()
	want, wantErr := json.Marshal(task)
	got, err := encodeTask(nil, task)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(want, got) {
		t.Fatalf("encodeTask differs from json.Marshal:\n got %q (%v)\nwant %q (%v)", got, err, want, wantErr)
	}
}

// The records of an ECHO task's life are built by appendTask itself (not left to json.Marshal)
// and are the bytes json.Marshal gives.
func TestEncodeTaskEcho(t *testing.T) {
	t.Parallel()
	l := newEchoLife(7)
	for _, task := range []*agentv1.Task{l.running, l.acked, l.final, l.removed} {
		checkEncode(t, task)
		if _, ok := appendTask(nil, task); !ok {
			t.Errorf("appendTask left the %s ECHO task to json.Marshal", task.Status.Phase)
		}
	}
}

func TestEncodeTaskCases(t *testing.T) {
	t.Parallel()
	now := metav1.NewTime(time.Date(2026, 12, 2, 4, 5, 6, 789, time.FixedZone("X", 3600)))
	zero := metav1.Time{}
	raw := func(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }
	for name, f := range map[string]func(*agentv1.Task){
		"empty": func(x *agentv1.Task) { *x = agentv1.Task{} },
		"zero time pointers": func(x *agentv1.Task) {
			x.Status.StartTime, x.Spec.CreatedAt, x.Status.Report.ReportedAt = &zero, &zero, &zero
		},
		"zero times":         func(x *agentv1.Task) { x.CreationTimestamp = zero; x.Status.Events[0].Time = zero },
		"timeout":            func(x *agentv1.Task) { x.Spec.Timeout = &metav1.Duration{Duration: 90*time.Second + time.Microsecond} },
		"payload spaced":     func(x *agentv1.Task) { x.Spec.Payload = raw(" { \"a\" : [1, 2] }\n") },
		"payload html":       func(x *agentv1.Task) { x.Spec.Payload = raw(`{"cmd":"a<b && c>d"}`) },
		"payload u2028":      func(x *agentv1.Task) { x.Spec.Payload = raw("{\"a\":\"x\u2028y\u2029\"}") },
		"payload invalid":    func(x *agentv1.Task) { x.Spec.Payload = raw(`{"a":`) },
		"payload empty":      func(x *agentv1.Task) { x.Spec.Payload = raw("") },
		"payload nil raw":    func(x *agentv1.Task) { x.Spec.Payload = &runtime.RawExtension{} },
		"payload object":     func(x *agentv1.Task) { x.Spec.Payload = &runtime.RawExtension{Object: &agentv1.Task{}} },
		"payload cbor":       func(x *agentv1.Task) { x.Spec.Payload = raw("\xd9\xd9\xf7\xa0") },
		"payload yaml":       func(x *agentv1.Task) { x.Spec.Payload = raw("a: 1") },
		"payload null":       func(x *agentv1.Task) { x.Spec.Payload = raw("null") },
		"result string":      func(x *agentv1.Task) { x.Status.Result = raw(`"é\u00e9\n"`) },
		"error newline":      func(x *agentv1.Task) { x.Status.Error = "exit 1:\nno such file" },
		"error unicode":      func(x *agentv1.Task) { x.Status.Error = "fichier introuvable: é €" },
		"error invalid utf8": func(x *agentv1.Task) { x.Status.Error = "bad \xff byte" },
		"message quote":      func(x *agentv1.Task) { x.Status.Conditions[0].Message = `say "hi" \ bye` },
		"labels":             func(x *agentv1.Task) { x.Labels = map[string]string{"z": "1", "a": "2", "m": "<3>"} },
		"labels many": func(x *agentv1.Task) {
			for i := range 12 {
				x.Labels[fmt.Sprint("l", i)] = "v"
			}
		},
		"labels empty": func(x *agentv1.Task) { x.Labels = map[string]string{} },
		"annotations":  func(x *agentv1.Task) { x.Annotations = map[string]string{"a": "b"} },
		"namespace":    func(x *agentv1.Task) { x.Namespace = "ns" },
		"finalizers":   func(x *agentv1.Task) { x.Finalizers = []string{"f"} },
		"deletion":     func(x *agentv1.Task) { x.DeletionTimestamp = &now },
		"no type meta": func(x *agentv1.Task) { x.TypeMeta = metav1.TypeMeta{} },
		"process": func(x *agentv1.Task) {
			x.Status.Process = &agentv1.ProcessRef{PGID: 42, BootID: "b", StartTicks: -7, Seal: "s"}
		},
		"process zero": func(x *agentv1.Task) { x.Status.Process = &agentv1.ProcessRef{} },
		"report":       func(x *agentv1.Task) { x.Status.Report = agentv1.ReportState{Rejected: true, LastError: "gone"} },
		"origin": func(x *agentv1.Task) {
			x.Spec.NotAfter, x.Spec.TimeoutSeconds, x.Spec.Signature = "2027-01-01T00:00:00Z", "30", "eyJ.x.y"
		},
		"negative": func(x *agentv1.Task) { x.Generation, x.Status.ObservedGeneration = -1, -9 },
		"far future": func(x *agentv1.Task) {
			x.CreationTimestamp = metav1.NewTime(time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC))
		},
		"before 1970":      func(x *agentv1.Task) { x.CreationTimestamp = metav1.NewTime(time.Unix(-1, 5)) },
		"no events":        func(x *agentv1.Task) { x.Status.Events, x.Status.Conditions = nil, []metav1.Condition{} },
		"condition zero":   func(x *agentv1.Task) { x.Status.Conditions = append(x.Status.Conditions, metav1.Condition{}) },
		"event no message": func(x *agentv1.Task) { x.Status.Events[1].Message = "" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			task := newEchoLife(1).final
			f(task)
			checkEncode(t, task)
		})
	}
}

// Tasks with every field filled at random (Task's fields of today and any added later) are
// encoded exactly as json.Marshal encodes them; those without what appendTask leaves to
// json.Marshal are built by appendTask.
func TestEncodeTaskRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 1))
		plain := seed%2 == 0
		task := &agentv1.Task{}
		fill(reflect.ValueOf(task).Elem(), r, plain)
		if plain {
			task.ObjectMeta = metav1.ObjectMeta{
				Name: task.Name, UID: task.UID, ResourceVersion: task.ResourceVersion,
				Generation: task.Generation, CreationTimestamp: task.CreationTimestamp, Labels: task.Labels,
			}
		}
		want, wantErr := json.Marshal(task)
		got, err := encodeTask(nil, task)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(want, got) {
			t.Fatalf("seed %d: encodeTask differs from json.Marshal:\n got %q (%v)\nwant %q (%v)", seed, got, err, want, wantErr)
		}
		if _, ok := appendTask(nil, task); plain && !ok {
			t.Fatalf("seed %d: appendTask left a plain Task to json.Marshal: %s", seed, want)
		}
	}
}

var (
	plainStrings = []string{"", "a", "Task succeeded", "t-1", "agent.letsbe.io/type", "x: y (z)"}
	oddStrings   = []string{"é", "<b>", `q"q`, `b\s`, "l\nb", "\xff", "\u2028", "&", "\x00", "\t"}
	plainRaws    = []string{`{"a":1}`, ` {"a" : [1, 2, "x"]} `, `null`, `"s"`, `[]`, `-1.5e3`, `true`}
	oddRaws      = []string{"", `{`, `{"h":"<"}`, "\xd9\xd9\xf7\xa0", "a: 1", "\"\u2029\""}
)

// fill sets v to random values: strings and payloads json never escapes when plain.
func fill(v reflect.Value, r *rand.Rand, plain bool) {
	pick := func(plainSet, odd []string) string {
		if plain || r.IntN(3) > 0 {
			return plainSet[r.IntN(len(plainSet))]
		}
		return odd[r.IntN(len(odd))]
	}
	switch x := v.Addr().Interface().(type) {
	case *metav1.Time:
		switch r.IntN(4) {
		case 0:
			*x = metav1.Time{}
		default:
			*x = metav1.NewTime(time.Unix(r.Int64N(4e9)-1e9, r.Int64N(1e9)).In([]*time.Location{time.UTC, time.Local, time.FixedZone("Y", -7200)}[r.IntN(3)]))
		}
		return
	case *runtime.RawExtension:
		if !plain && r.IntN(8) == 0 {
			x.Object = &agentv1.Task{}
			return
		}
		if r.IntN(6) > 0 {
			x.Raw = []byte(pick(plainRaws, oddRaws))
		}
		return
	case *metav1.FieldsV1:
		x.SetRawBytes([]byte(pick(plainRaws, oddRaws)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(pick(plainStrings, oddStrings))
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int32, reflect.Int64:
		if r.IntN(3) > 0 {
			v.SetInt(r.Int64N(1e6) - 1e3)
		}
	case reflect.Pointer:
		if r.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), r, plain)
		}
	case reflect.Slice:
		if n := r.IntN(4); n > 0 || r.IntN(2) == 0 {
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				fill(v.Index(i), r, plain)
			}
		}
	case reflect.Map:
		if n := r.IntN(4); n > 0 || r.IntN(2) == 0 {
			m := reflect.MakeMapWithSize(v.Type(), n)
			for range n {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(k, r, plain)
				fill(e, r, plain)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), r, plain)
			}
		}
	}
}

func FuzzEncodeTask(f *testing.F) {
	f.Add("Task succeeded", "hello", []byte(`{"message":"hello"}`), []byte(`{"ok":true}`), int64(1))
	f.Add("l\nb", "<é>", []byte(" [1, 2] "), []byte(`{"a":"\u2028"}`), int64(-3))
	f.Fuzz(func(t *testing.T, msg, label string, payload, result []byte, n int64) {
		task := newEchoLife(int(n)).final
		task.Status.Error, task.Status.Events[0].Message, task.Status.Conditions[0].Reason = msg, msg, msg
		task.Labels[label] = msg
		task.Spec.Payload.Raw, task.Status.Result.Raw = payload, result
		task.Generation, task.Status.ObservedGeneration = n, n
		task.Status.StartTime = &metav1.Time{Time: time.Unix(n, n)}
		checkEncode(t, task)
	})
}

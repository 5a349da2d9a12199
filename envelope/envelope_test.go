package envelope_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mailwire/mailwire/envelope"
)

func TestNew(t *testing.T) {
	tests := []struct {
		from string
		to   []string
		want *envelope.Envelope
	}{
		{"a@x", nil, &envelope.Envelope{From: "a@x"}},
		{"", []string{"b@y"}, &envelope.Envelope{To: []envelope.Recipient{{Addr: "b@y"}}}},
		{"a@x", []string{"b@y", "c@z", "b@y"}, &envelope.Envelope{From: "a@x", To: []envelope.Recipient{
			{Addr: "b@y"}, {Addr: "c@z"}, {Addr: "b@y"},
		}}},
	}
	for _, tt := range tests {
		if got := envelope.New(tt.from, tt.to...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("New(%q, %q) = %+v, want %+v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestNewDoesNotAliasArguments(t *testing.T) {
	to := []string{"b@y"}
	env := envelope.New("a@x", to...)
	to[0] = "changed@y"
	if env.To[0].Addr != "b@y" {
		t.Errorf("New kept a reference to its argument: To[0].Addr = %q", env.To[0].Addr)
	}
}

func fullEnvelope() *envelope.Envelope {
	return &envelope.Envelope{
		From:       "a@x",
		To:         []envelope.Recipient{{Addr: "b@y", Notify: []envelope.DSNNotify{envelope.NotifySuccess}, ORcpt: "o@y"}, {Addr: "c@y", Notify: []envelope.DSNNotify{}}},
		Size:       42,
		Body:       envelope.Body8BitMIME,
		UTF8:       true,
		RequireTLS: true,
		Return:     envelope.ReturnFull,
		EnvID:      "id",
	}
}

func TestClone(t *testing.T) {
	orig := fullEnvelope()
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("Clone() = %+v, want %+v", c, orig)
	}
	if c == orig {
		t.Fatal("Clone returned its receiver")
	}
	if c.To[1].Notify == nil {
		t.Error("Clone turned an empty Notify into nil")
	}

	c.From = "changed@x"
	c.To[0].Addr = "changed@y"
	c.To[0].Notify[0] = envelope.NotifyNever
	c.To[1].Notify = append(c.To[1].Notify, envelope.NotifyDelay)
	c.To = append(c.To[:1], envelope.Recipient{Addr: "new@y"})
	if want := fullEnvelope(); !reflect.DeepEqual(orig, want) {
		t.Errorf("changing the clone changed the original: %+v, want %+v", orig, want)
	}
}

func TestCloneNil(t *testing.T) {
	var e *envelope.Envelope
	if got := e.Clone(); got != nil {
		t.Errorf("(*Envelope)(nil).Clone() = %+v, want nil", got)
	}
	zero := &envelope.Envelope{}
	if got := zero.Clone(); got.To != nil || !reflect.DeepEqual(got, zero) {
		t.Errorf("zero.Clone() = %+v, want the zero Envelope", got)
	}
}

func TestNeedsUTF8(t *testing.T) {
	tests := []struct {
		name string
		env  *envelope.Envelope
		want bool
	}{
		{"ASCII", envelope.New("a@x", "b@y"), false},
		{"null reverse-path", envelope.New("", "b@y"), false},
		{"UTF8 set", &envelope.Envelope{UTF8: true, To: []envelope.Recipient{{Addr: "b@y"}}}, true},
		{"non-ASCII from", envelope.New("jörg@x", "b@y"), true},
		{"non-ASCII recipient", envelope.New("a@x", "b@y", "c@münchen.de"), true},
		{"non-ASCII ORcpt", &envelope.Envelope{To: []envelope.Recipient{{Addr: "b@y", ORcpt: "ü@y"}}}, true},
		{"U+010A", envelope.New("a@x", "\u010a@y"), true},
		{"U+760D", envelope.New("\u760d@x", "b@y"), true},
		{"invalid UTF-8 counts as non-ASCII", envelope.New("a@x", "\xff@y"), true},
		{"non-ASCII EnvID does not count", &envelope.Envelope{EnvID: "é", To: []envelope.Recipient{{Addr: "b@y"}}}, false},
	}
	for _, tt := range tests {
		if got := tt.env.NeedsUTF8(); got != tt.want {
			t.Errorf("%s: NeedsUTF8() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUnmarshalText(t *testing.T) {
	var cfg struct {
		Body   envelope.BodyType
		Return envelope.DSNReturn
		Notify []envelope.DSNNotify
	}
	in := `{"Body":"8bitmime","Return":"hdrs","Notify":["Success","DELAY"]}`
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v", in, err)
	}
	if cfg.Body != envelope.Body8BitMIME || cfg.Return != envelope.ReturnHeaders ||
		!reflect.DeepEqual(cfg.Notify, []envelope.DSNNotify{envelope.NotifySuccess, envelope.NotifyDelay}) {
		t.Errorf("json.Unmarshal(%s) = %+v, want canonical upper-case values", in, cfg)
	}

	tests := []struct {
		text  string
		body  error
		ret   error
		notif error
	}{
		{"", nil, nil, envelope.ErrInvalidParam},
		{"7bit", nil, envelope.ErrInvalidParam, envelope.ErrInvalidParam},
		{"BinaryMIME", nil, envelope.ErrInvalidParam, envelope.ErrInvalidParam},
		{"Full", envelope.ErrInvalidParam, nil, envelope.ErrInvalidParam},
		{"never", envelope.ErrInvalidParam, envelope.ErrInvalidParam, nil},
		{"SUCCESS,FAILURE", envelope.ErrInvalidParam, envelope.ErrInvalidParam, envelope.ErrInvalidParam},
		{"8BITMIME\r\n", envelope.ErrInvalidParam, envelope.ErrInvalidParam, envelope.ErrInvalidParam},
		// U+017F folds to "s" in Unicode, not in ASCII.
		{"\u017fuccess", envelope.ErrInvalidParam, envelope.ErrInvalidParam, envelope.ErrInvalidParam},
	}
	for _, tt := range tests {
		b := envelope.BodyType("unchanged")
		checkErr(t, "BodyType.UnmarshalText("+quote(tt.text)+")", b.UnmarshalText([]byte(tt.text)), tt.body, "body")
		if tt.body != nil && b != "unchanged" {
			t.Errorf("failed BodyType.UnmarshalText(%q) changed the value to %q", tt.text, b)
		}
		r := envelope.DSNReturn("unchanged")
		checkErr(t, "DSNReturn.UnmarshalText("+quote(tt.text)+")", r.UnmarshalText([]byte(tt.text)), tt.ret, "return")
		n := envelope.DSNNotify("unchanged")
		checkErr(t, "DSNNotify.UnmarshalText("+quote(tt.text)+")", n.UnmarshalText([]byte(tt.text)), tt.notif, "notify")
		if tt.notif != nil && n != "unchanged" {
			t.Errorf("failed DSNNotify.UnmarshalText(%q) changed the value to %q", tt.text, n)
		}
	}
}

package apps

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// OptionType is an option's kind of value.
type OptionType string

// Option types. Values are written as text (the CLI, the manifest's
// defaults): true/false; a whole number; text; one of the choices; a size
// with a unit (10GB, 512MB, 0); a duration (90m, 24h, 7d).
const (
	Bool     OptionType = "bool"
	Int      OptionType = "int"
	String   OptionType = "string"
	Choice   OptionType = "choice"
	Size     OptionType = "size"
	Duration OptionType = "duration"
)

// Option is one of an app's settings.
type Option struct {
	// Name is how the CLI and API call it: 1 to 32 lower-case letters,
	// digits and hyphens, starting with a letter.
	Name        string     `toml:"name" json:"name"`
	Type        OptionType `toml:"type" json:"type"`
	Default     string     `toml:"default" json:"default"`
	Description string     `toml:"description" json:"description"`
	// Min and Max bound int, size and duration values (as text, like
	// values); empty for no bound.
	Min string `toml:"min" json:"min,omitempty"`
	Max string `toml:"max" json:"max,omitempty"`
	// Choices are a choice option's values.
	Choices []string `toml:"choices" json:"choices,omitempty"`
	// MaxLen bounds a string option's length in characters (default 200).
	MaxLen int `toml:"max_len" json:"max_len,omitempty"`
	// Live options are changed while the app runs (Env.WatchOptions);
	// changing any other restarts the app.
	Live bool `toml:"live" json:"live,omitempty"`
}

// OptionError is a value refused for an option: which, and what is
// accepted.
type OptionError struct {
	Option string
	Value  string
	Msg    string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("option %s: %q: %s", e.Option, e.Value, e.Msg)
}

func (o Option) validate(field string) error {
	if !optRE.MatchString(o.Name) || strings.HasSuffix(o.Name, "-") {
		return bad(field+".name", "%q: 1 to 32 lower-case letters, digits and hyphens, starting with a letter", o.Name)
	}
	field = "options." + o.Name
	switch o.Type {
	case Bool, Int, String, Size, Duration:
		if len(o.Choices) > 0 {
			return bad(field+".choices", "only a choice option has choices")
		}
	case Choice:
		if len(o.Choices) < 2 || len(o.Choices) > 32 {
			return bad(field+".choices", "a choice option has 2 to 32 choices")
		}
		for i, c := range o.Choices {
			if !optRE.MatchString(c) {
				return bad(fmt.Sprintf("%s.choices[%d]", field, i), "%q: 1 to 32 lower-case letters, digits and hyphens", c)
			}
			if slices.Index(o.Choices, c) != i {
				return bad(fmt.Sprintf("%s.choices[%d]", field, i), "%q is listed twice", c)
			}
		}
	default:
		return bad(field+".type", "%q: one of bool, int, string, choice, size, duration", o.Type)
	}
	if err := text(field+".description", o.Description, 1, 300, false); err != nil {
		return err
	}
	if o.MaxLen < 0 || o.MaxLen > 4096 || (o.MaxLen != 0 && o.Type != String) {
		return bad(field+".max_len", "%d: only for a string option, 1 to 4096", o.MaxLen)
	}
	if o.Min != "" || o.Max != "" {
		if o.Type != Int && o.Type != Size && o.Type != Duration {
			return bad(field, "min and max are for int, size and duration options")
		}
		for _, b := range []struct{ name, v string }{{"min", o.Min}, {"max", o.Max}} {
			if b.v == "" {
				continue
			}
			if _, err := o.number(b.v); err != nil {
				return bad(field+"."+b.name, "%q: %s", b.v, err)
			}
		}
		if o.Min != "" && o.Max != "" {
			lo, _ := o.number(o.Min)
			hi, _ := o.number(o.Max)
			if lo > hi {
				return bad(field, "min %s is more than max %s", o.Min, o.Max)
			}
		}
	}
	if o.Default == "" && o.Type != String {
		return bad(field+".default", "missing: %s", o.Accepts())
	}
	if _, err := o.Parse(o.Default); err != nil {
		return bad(field+".default", "%s", err.(*OptionError).Msg)
	}
	return nil
}

// Accepts says what values the option takes, for error messages and help.
func (o Option) Accepts() string {
	rng := ""
	if o.Min != "" && o.Max != "" {
		rng = " from " + o.Min + " to " + o.Max
	} else if o.Min != "" {
		rng = " of at least " + o.Min
	} else if o.Max != "" {
		rng = " of at most " + o.Max
	}
	switch o.Type {
	case Bool:
		return "true or false"
	case Int:
		return "a whole number" + rng
	case String:
		return fmt.Sprintf("text of at most %d characters, on one line", o.maxLen())
	case Choice:
		return "one of " + strings.Join(o.Choices, ", ")
	case Size:
		return "a size with its unit (B, KB, MB, GB, TB), such as 500MB or 20GB" + rng
	case Duration:
		return "a duration such as 90m, 24h or 7d" + rng
	}
	return "nothing"
}

func (o Option) maxLen() int {
	if o.MaxLen == 0 {
		return 200
	}
	return o.MaxLen
}

// Parse checks a value written as text and returns it in canonical form.
func (o Option) Parse(s string) (string, error) {
	fail := func() (string, error) { return "", &OptionError{Option: o.Name, Value: s, Msg: "want " + o.Accepts()} }
	v := strings.TrimSpace(s)
	switch o.Type {
	case Bool:
		switch strings.ToLower(v) {
		case "true", "yes", "on", "1":
			return "true", nil
		case "false", "no", "off", "0":
			return "false", nil
		}
		return fail()
	case String:
		if utf8.RuneCountInString(s) > o.maxLen() || text(o.Name, s, 0, o.maxLen(), false) != nil {
			return fail()
		}
		return s, nil
	case Choice:
		if slices.Contains(o.Choices, v) {
			return v, nil
		}
		return fail()
	case Int, Size, Duration:
		n, err := o.number(v)
		if err != nil {
			return fail()
		}
		if o.Min != "" {
			if lo, _ := o.number(o.Min); n < lo {
				return fail()
			}
		}
		if o.Max != "" {
			if hi, _ := o.number(o.Max); n > hi {
				return fail()
			}
		}
		switch o.Type {
		case Size:
			return FormatSize(n), nil
		case Duration:
			return formatDuration(time.Duration(n)), nil
		}
		return strconv.FormatInt(n, 10), nil
	}
	return fail()
}

// number turns an int, size or duration into an int64 (bytes, nanoseconds).
func (o Option) number(s string) (int64, error) {
	switch o.Type {
	case Int:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not a whole number")
		}
		return n, nil
	case Size:
		return ParseSize(s)
	case Duration:
		d, err := parseDuration(s)
		return int64(d), err
	}
	return 0, fmt.Errorf("not a number option")
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}}

// ParseSize reads a size such as 20GB, 1.5TB, 512MB or 0 (units are powers
// of 1024; TiB, GiB… and lower case are accepted).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	u := strings.ToUpper(strings.Replace(s, "iB", "B", 1))
	for _, unit := range sizeUnits {
		num, ok := strings.CutSuffix(u, unit.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || f < 0 || math.IsNaN(f) || f*float64(unit.mult) >= float64(math.MaxInt64) {
			break
		}
		return int64(f * float64(unit.mult)), nil
	}
	return 0, fmt.Errorf("not a size with its unit, such as 500MB or 20GB")
}

// FormatSize writes n bytes in the largest unit that keeps it whole.
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, unit := range sizeUnits {
		if n%unit.mult == 0 {
			return strconv.FormatInt(n/unit.mult, 10) + unit.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// parseDuration reads Go's durations and whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("not a duration")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("not a duration")
	}
	return d, nil
}

func formatDuration(d time.Duration) string {
	if d != 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String() // "1h30m0s", "2h0m0s", "10m0s", "45s"
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Options are an app's option values, in canonical text by name. The typed
// getters return the zero value for an option the manifest does not have.
type Options struct {
	m    Manifest
	vals map[string]string
}

// NewOptions are m's defaults overlaid with set (canonical values by name);
// values no longer valid for the manifest (an app's update changed them) fall
// back to the default.
func NewOptions(m Manifest, set map[string]string) Options {
	vals := make(map[string]string, len(m.Options))
	for _, o := range m.Options {
		def, _ := o.Parse(o.Default)
		vals[o.Name] = def
		if v, ok := set[o.Name]; ok {
			if c, err := o.Parse(v); err == nil {
				vals[o.Name] = c
			}
		}
	}
	return Options{m: m, vals: vals}
}

// With returns the options with name set to value, checked.
func (o Options) With(name, value string) (Options, error) {
	opt, ok := o.m.Option(name)
	if !ok {
		names := make([]string, 0, len(o.m.Options))
		for _, x := range o.m.Options {
			names = append(names, x.Name)
		}
		return o, &OptionError{Option: name, Value: value, Msg: fmt.Sprintf("%s has no such option; it has %s", o.m.ID, strings.Join(names, ", "))}
	}
	c, err := opt.Parse(value)
	if err != nil {
		return o, err
	}
	vals := maps.Clone(o.vals)
	vals[name] = c
	return Options{m: o.m, vals: vals}, nil
}

// Get returns an option's value as text.
func (o Options) Get(name string) (string, bool) {
	v, ok := o.vals[name]
	return v, ok
}

// Values returns every value, by name.
func (o Options) Values() map[string]string { return maps.Clone(o.vals) }

// Changed returns the names whose values differ between o and p.
func (o Options) Changed(p Options) []string {
	var out []string
	for k, v := range o.vals {
		if p.vals[k] != v {
			out = append(out, k)
		}
	}
	for k := range p.vals {
		if _, ok := o.vals[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Bool returns a bool option's value.
func (o Options) Bool(name string) bool { return o.vals[name] == "true" }

// String returns a string or choice option's value.
func (o Options) String(name string) string { return o.vals[name] }

// Int returns an int option's value.
func (o Options) Int(name string) int64 {
	n, _ := strconv.ParseInt(o.vals[name], 10, 64)
	return n
}

// Size returns a size option's value in bytes.
func (o Options) Size(name string) int64 {
	n, _ := ParseSize(o.vals[name])
	return n
}

// Duration returns a duration option's value.
func (o Options) Duration(name string) time.Duration {
	d, _ := parseDuration(o.vals[name])
	return d
}

; Definitions

(call
  target: (identifier) @_keyword
  (arguments [(alias) (dot)] @name.definition.module)
  (#any-of? @_keyword "defmodule" "defprotocol")) @definition.module

(call
  target: (identifier) @_keyword
  (arguments
    [
      (call target: (identifier) @name.definition.function)
      (identifier) @name.definition.function
      (binary_operator
        left: (call target: (identifier) @name.definition.function)
        operator: "when")
    ])
  (#any-of? @_keyword "def" "defp" "defdelegate" "defguard" "defguardp" "defn" "defnp")) @definition.function

(call
  target: (identifier) @_keyword
  (arguments
    [
      (call target: (identifier) @name.definition.macro)
      (identifier) @name.definition.macro
      (binary_operator
        left: (call target: (identifier) @name.definition.macro)
        operator: "when")
    ])
  (#any-of? @_keyword "defmacro" "defmacrop")) @definition.macro

; References

(call
  target: [
    (identifier) @name.reference.call
    (dot right: (identifier) @name.reference.call)
  ]
  (#not-match? @name.reference.call "^(def|defp|defmodule|defmacro|defmacrop|defprotocol|defimpl|defdelegate|defguard|defguardp|defstruct|defexception|defn|defnp|alias|import|require|use|if|unless|case|cond|with|for|fn|quote|unquote|receive|try|moduledoc|doc|spec|type|typep|callback|impl)$"))

; Definitions

(binary_operator
  lhs: [(identifier) (string)] @name.definition.function
  operator: ["<-" "=" "<<-"]
  rhs: (function_definition)) @definition.function

(binary_operator
  lhs: (identifier) @name.definition.class
  operator: ["<-" "="]
  rhs: (call
    function: (identifier) @_ctor
    (#any-of? @_ctor "setRefClass" "R6Class" "setClass"))) @definition.class

; References

(call
  function: [
    (identifier) @name.reference.call
    (namespace_operator rhs: (identifier) @name.reference.call)
    (extract_operator rhs: (identifier) @name.reference.call)
  ])

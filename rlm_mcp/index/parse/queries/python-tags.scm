; Definitions

(class_definition
  name: (identifier) @name.definition.class) @definition.class

(function_definition
  name: (identifier) @name.definition.function) @definition.function

(assignment
  left: (identifier) @name.definition.function
  right: (lambda)) @definition.function

(module
  (assignment
    left: (identifier) @name.definition.constant) @definition.constant
  (#match? @name.definition.constant "^_*[A-Z][A-Z0-9_]*$"))

(class_definition
  body: (block
    (assignment
      left: (identifier) @name.definition.field) @definition.field))

; References

(call
  function: (identifier) @name.reference.call) @reference.call

(call
  function: (attribute
    attribute: (identifier) @name.reference.call)) @reference.call

(decorator
  [
    (identifier) @name.reference.call
    (attribute attribute: (identifier) @name.reference.call)
  ])

(class_definition
  superclasses: (argument_list
    [
      (identifier) @name.reference.class
      (attribute attribute: (identifier) @name.reference.class)
    ]))

(type
  (identifier) @name.reference.type)

(type
  (generic_type (identifier) @name.reference.type))

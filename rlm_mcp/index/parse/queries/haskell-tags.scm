; Definitions

(data_type
  name: (name) @name.definition.type) @definition.type

(newtype
  name: (name) @name.definition.type) @definition.type

(type_synomym
  name: (name) @name.definition.type) @definition.type

(class
  name: (name) @name.definition.class) @definition.class

(class_declarations
  (signature
    name: (variable) @name.definition.method) @definition.method)

(declarations
  (signature
    name: (variable) @name.definition.function) @definition.function)

(instance
  name: (name) @name.scope) @scope

; References

(apply
  function: (variable) @name.reference.call)

(infix
  operator: (infix_id (variable) @name.reference.call))

(signature
  type: (_
    (name) @name.reference.type))

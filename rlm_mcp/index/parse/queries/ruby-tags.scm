; Definitions

(class
  name: [(constant) (scope_resolution name: (_))] @name.definition.class) @definition.class

(singleton_class
  value: (_) @name.scope) @scope

(module
  name: [(constant) (scope_resolution name: (_))] @name.definition.module) @definition.module

(method
  name: (_) @name.definition.method) @definition.method

(singleton_method
  name: (_) @name.definition.method) @definition.method

(alias
  name: (_) @name.definition.method) @definition.method

(assignment
  left: (constant) @name.definition.constant) @definition.constant

; References

(call
  method: (identifier) @name.reference.call)

(superclass
  (constant) @name.reference.class)

(call
  receiver: (constant) @name.reference.class)

; Definitions

(value_definition
  (let_binding
    pattern: (value_name) @name.definition.function
    (parameter))) @definition.function

(value_definition
  (let_binding
    pattern: (value_name) @name.definition.function
    body: (fun_expression))) @definition.function

(value_definition
  (let_binding
    pattern: (value_name) @name.definition.variable)) @definition.variable

(external
  (value_name) @name.definition.function) @definition.function

(type_definition
  (type_binding
    name: (type_constructor) @name.definition.type)) @definition.type

(module_definition
  (module_binding
    (module_name) @name.definition.module)) @definition.module

(module_type_definition
  (module_type_name) @name.definition.interface) @definition.interface

(class_definition
  (class_binding
    (class_name) @name.definition.class)) @definition.class

(method_definition
  (method_name) @name.definition.method) @definition.method

; References

(application_expression
  function: (value_path
    (value_name) @name.reference.call))

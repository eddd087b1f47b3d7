// The connection form in react-jsonschema-form, from the JSON Schema alone
// (rjsf does not read JSON Forms UI schemas), validated by its Ajv 8 validator.
import React from "react";
import { createRoot } from "react-dom/client";
import Form from "@rjsf/core";
import { customizeValidator } from "@rjsf/validator-ajv8";
import Ajv2020 from "ajv/dist/2020";
import schema from "./connection.schema.json";

const validator = customizeValidator({ AjvClass: Ajv2020 });

createRoot(document.getElementById("root")).render(<Form schema={schema} validator={validator} liveValidate={false} />);
window.rendered = true;
